import type { App } from '../helper.js'
import type { Schema } from './values.js'

/** The fuzzer's view of the OpenAPI document: one entry per operation, and the statuses it may send. */

export interface Parameter {
  name: string
  in: 'path' | 'query'
  required: boolean
  schema: Schema
}

export interface Operation {
  method: string
  /** The OpenAPI path, `{name}` for parameters. */
  path: string
  tag: string
  parameters: Parameter[]
  /** The JSON body's schema, when the operation takes one. */
  body: Schema | undefined
  /** A token is needed (every security requirement names a scheme). */
  secured: boolean
  /** The explicitly numbered responses (the `4XX`/`5XX` ranges every route declares are left out). */
  declared: Set<number>
}

interface OpenApiOperation {
  tags?: string[]
  parameters?: { name: string; in: string; required?: boolean; schema: Schema }[]
  requestBody?: { content: Record<string, { schema: Schema }> }
  security?: Record<string, string[]>[]
  responses: Record<string, unknown>
}

interface OpenApiDocument {
  paths: Record<string, Record<string, OpenApiOperation>>
  components?: { schemas?: Record<string, Schema> }
}

const COMPONENT = '#/components/schemas/'

/**
 * The schema with every `$ref` to components.schemas replaced by the schema it names, so the
 * value generators (values.ts) read plain JSON Schema. The shared schemas are not recursive.
 */
export function inlineRefs(schema: Schema, components: Record<string, Schema>, seen: string[] = []): Schema {
  const walk = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(walk)
    if (typeof value !== 'object' || value === null) return value
    const { $ref } = value as { $ref?: unknown }
    if (typeof $ref === 'string') {
      const name = $ref.startsWith(COMPONENT) ? $ref.slice(COMPONENT.length) : undefined
      const target = name === undefined ? undefined : components[name]
      if (!name || !target) throw new Error(`unresolvable $ref ${$ref}`)
      if (seen.includes(name)) throw new Error(`recursive $ref ${$ref}`)
      return inlineRefs(target, components, [...seen, name])
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v)]))
  }
  return walk(schema) as Schema
}

/** Reads every operation of `GET /docs/json`, as test/routes/docs.test.ts reads the document. */
export async function readOperations(app: App): Promise<Operation[]> {
  const res = await app.inject('/docs/json')
  if (res.statusCode !== 200) throw new Error(`/docs/json: ${res.statusCode}`)
  const doc = res.json<OpenApiDocument>()
  const components = doc.components?.schemas ?? {}
  const resolve = (schema: Schema | undefined) => schema && inlineRefs(schema, components)
  const out: Operation[] = []
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      out.push({
        method: method.toUpperCase(),
        path,
        tag: op.tags?.[0] ?? 'untagged',
        parameters: (op.parameters ?? [])
          .filter((p) => p.in === 'path' || p.in === 'query')
          .map((p) => ({
            name: p.name,
            in: p.in as 'path' | 'query',
            required: p.required ?? false,
            schema: inlineRefs(p.schema, components),
          })),
        body: resolve(op.requestBody?.content['application/json']?.schema),
        secured:
          (op.security ?? []).length > 0 && (op.security ?? []).every((s) => Object.keys(s).length > 0),
        declared: new Set(
          Object.keys(op.responses)
            .filter((s) => /^\d{3}$/.test(s))
            .map(Number),
        ),
      })
    }
  }
  return out
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
const TAKES_BODY = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/**
 * The statuses an operation may answer: the ones it declares, plus those the shared layers send on
 * any route, each for a reason the fuzzer provokes on purpose:
 * - 400: a body Fastify cannot parse (malformed JSON, `__proto__` keys, an empty JSON body), and a
 *   URL the router cannot decode (server-options.ts frameworkErrors) — before any route schema runs;
 * - 404: a mutated path that no longer names a route (the not-found handler);
 * - 413 and 415 on methods with a body: over BODY_LIMIT_BYTES, or a content type other than JSON
 *   (app.ts drops the text/plain parser);
 * - 414 on routes with path parameters: a segment over MAX_PARAM_LENGTH (server-options.ts);
 * - 403 on unsafe methods: the CSRF guard refuses cookie-borne requests from another origin
 *   (plugins/app/csrf.ts), whatever the route;
 * - 401 and 403 on secured routes: authenticate and authorize run before the route's own code.
 * Not allowed anywhere: 405 (Fastify answers an unknown method with 404), 429 (the fuzz app's limits
 * are out of reach, so a 429 would hide what the request would have got) and every 5xx.
 */
export function allowedStatuses(op: Operation): Set<number> {
  const allowed = new Set([...op.declared, 400, 404])
  if (TAKES_BODY.has(op.method)) for (const s of [413, 415]) allowed.add(s)
  if (op.parameters.some((p) => p.in === 'path')) allowed.add(414)
  if (UNSAFE.has(op.method)) allowed.add(403)
  if (op.secured) for (const s of [401, 403]) allowed.add(s)
  allowed.delete(429)
  return allowed
}

/** Sessions and sign-out, split from the rest of `auth` so each file stays well within tap's timeout. */
export const isSessionOperation = (op: Operation) =>
  op.tag === 'auth' && /^\/api\/auth\/(logout|sessions)/.test(op.path)

/** The tags that have a fuzz file of their own; other.test.ts takes every other operation. */
export const GROUPED_TAGS = ['auth', 'mfa', 'users', 'comments', 'admin']
