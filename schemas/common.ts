import { type SchemaOptions, type Static, type TObject, type TSchema, Type } from '@sinclair/typebox'

/** Schemas every route shares: problems, ids, pagination, references, security requirements. */

/**
 * A reference to a shared schema: `$ref` in the route schema (Fastify resolves it against
 * plugins/app/shared-schemas.ts, and @fastify/swagger lists the schema once in components.schemas),
 * the referenced type in TypeScript. `options` may add a description of this use (a response's).
 */
export function ref<T extends TSchema>(schema: T, options: SchemaOptions = {}) {
  if (!schema.$id) throw new Error('ref(): the schema has no $id, so it is not shared')
  return Type.Unsafe<Static<T>>(Type.Ref(schema.$id, options))
}

/** RFC 9457 problem details, the body of every error response. */
export const ProblemSchema = Type.Object(
  {
    type: Type.String({
      description: 'A URI naming the problem: `urn:bulwark:problem:<name>` or `about:blank`.',
    }),
    title: Type.String({ description: "The status code's reason phrase." }),
    status: Type.Integer(),
    detail: Type.String({ description: 'What went wrong, for people.' }),
    instance: Type.String({ description: 'The path of the request.' }),
    requestId: Type.String({ description: 'The X-Request-Id of the request, for support and logs.' }),
    errors: Type.Optional(
      Type.Array(Type.Object({ path: Type.String(), message: Type.String() }), {
        description: 'One entry per invalid field (at most 20).',
      }),
    ),
    /** How many field errors were left out of `errors` (it lists at most 20). */
    errorsOmitted: Type.Optional(Type.Integer({ description: 'How many field errors `errors` left out.' })),
    stack: Type.Optional(Type.String({ description: 'Outside production only.' })),
  },
  {
    $id: 'Problem',
    description: 'RFC 9457 problem details',
    examples: [
      {
        type: 'urn:bulwark:problem:validation-error',
        title: 'Validation failed',
        status: 400,
        detail: 'The request is invalid; see errors for each field.',
        instance: '/api/comments',
        requestId: '9f2c4b1e-3d5a-4c2b-8e7f-1a2b3c4d5e6f',
        errors: [{ path: 'body.body', message: 'must be 1–2000 characters' }],
      },
    ],
  },
)
export type Problem = Static<typeof ProblemSchema>
/** What routes declare for an error status; plugins/app/problem-responses.ts documents it as problem+json. */
export const Problem = ref(ProblemSchema)

export const StatusOkSchema = Type.Object(
  { status: Type.Literal('ok') },
  { $id: 'StatusOk', examples: [{ status: 'ok' }] },
)

/** A response without a body (204), described for the OpenAPI document; `send()` takes no payload. */
export const NoContent = (description: string) => Type.Unsafe<undefined>({ type: 'null', description })

/** Plain 8-4-4-4-12 hex: ajv's `uuid` format also takes a `urn:uuid:` prefix that PostgreSQL refuses. */
export const Uuid = Type.String({
  pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
  'x-message': 'must be a UUID',
})
export const IdParams = Type.Object({ id: Uuid }, { additionalProperties: false })

/** Query numbers are bounded integers: `limit=1e9`, `-1` and `abc` are 400. */
export const Limit = Type.Integer({
  minimum: 1,
  maximum: 100,
  default: 20,
  description: 'Items per page.',
  'x-message': 'must be an integer from 1 to 100',
})
export const Cursor = Type.String({
  minLength: 1,
  maxLength: 512,
  pattern: '^[A-Za-z0-9_.-]+$',
  description: 'The `nextCursor` of the previous page.',
})

/** The query of every keyset-paginated list; each list adds its own filters. */
export const pageQuery = { limit: Limit, cursor: Type.Optional(Cursor) }

/**
 * A query object whose defaulted keys are optional to send: Ajv's useDefaults fills them in, so the
 * type handlers see (Static) keeps them present while the document and clients may leave them out.
 */
export function query<T extends TObject>(schema: T): T {
  const required = (schema.required ?? []).filter((key) => !('default' in (schema.properties[key] ?? {})))
  const { required: _, ...rest } = schema
  return (required.length > 0 ? { ...rest, required } : rest) as T
}

/** A page of a list: its items and the opaque cursor of the next page (null on the last). */
export const Page = <T extends TSchema>(item: T, $id: string) =>
  Type.Object(
    {
      items: Type.Array(item),
      nextCursor: Type.Union([Type.String(), Type.Null()], {
        description: 'Pass as `cursor` for the next page; null on the last page.',
      }),
    },
    { $id },
  )

/** OpenAPI: routes that need an access token, by header or by cookie. */
export const SIGNED_IN: Record<string, string[]>[] = [{ bearerAuth: [] }, { cookieAuth: [] }]

/** An opaque token the service makes (refresh, sign-in challenge, mailed link): 32 random bytes, base64url. */
export const OPAQUE_TOKEN = '^[A-Za-z0-9_-]{43}$'
