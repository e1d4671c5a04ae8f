import { type Static, type TSchema, Type } from '@sinclair/typebox'

/** Schemas every route shares: problems, ids, pagination, security requirements. */

/** RFC 9457 problem details, the body of every error response. */
export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    instance: Type.String(),
    requestId: Type.String(),
    errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
    /** How many field errors were left out of `errors` (it lists at most 20). */
    errorsOmitted: Type.Optional(Type.Integer()),
    stack: Type.Optional(Type.String()),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details' },
)

export type Problem = Static<typeof ProblemSchema>

export const StatusOkSchema = Type.Object({ status: Type.Literal('ok') })

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
  'x-message': 'must be an integer from 1 to 100',
})
export const Cursor = Type.String({ minLength: 1, maxLength: 512, pattern: '^[A-Za-z0-9_.-]+$' })

/** The query of every keyset-paginated list; each list adds its own filters. */
export const pageQuery = { limit: Limit, cursor: Type.Optional(Cursor) }

/** A page of a list: its items and the opaque cursor of the next page (null on the last). */
export const Page = <T extends TSchema>(item: T) =>
  Type.Object({ items: Type.Array(item), nextCursor: Type.Union([Type.String(), Type.Null()]) })

/** OpenAPI: routes that need an access token, by header or by cookie. */
export const SIGNED_IN: Record<string, string[]>[] = [{ bearerAuth: [] }, { cookieAuth: [] }]
