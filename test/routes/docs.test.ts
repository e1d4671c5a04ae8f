import { Validator } from '@seriousme/openapi-schema-validator'
import t from 'tap'
import { build, TEST_JWT_SECRET } from '../helper.js'

/** Reads Fastify's route tree (each level indents 4 characters) back into method + full path. */
function registeredRoutes(tree: string): { method: string; url: string }[] {
  const stack: string[] = []
  const out: { method: string; url: string }[] = []
  for (const line of tree.split('\n')) {
    const m = /^([│ ]*)[├└]── (.+?) \(([A-Z, ]+)\)$/.exec(line)
    if (!m) continue
    const depth = (m[1] ?? '').length / 4
    stack.length = depth
    const url = (stack[depth - 1] ?? '') + (m[2] ?? '')
    stack[depth] = url
    for (const method of (m[3] ?? '').split(', '))
      out.push({ method, url: url.length > 1 ? url.replace(/\/$/, '') : url })
  }
  return out
}

t.test('/docs/json is a valid OpenAPI 3.1 document describing every route', async (t) => {
  const app = await build(t)
  const routes = registeredRoutes(app.printRoutes({ commonPrefix: false })).filter(
    (r) => r.method !== 'HEAD' && r.method !== 'OPTIONS' && !r.url.startsWith('/docs'),
  )
  const res = await app.inject('/docs/json')
  t.equal(res.statusCode, 200)
  const doc = res.json()
  t.equal(doc.openapi, '3.1.0')
  const validator = new Validator()
  const result = await validator.validate(doc)
  t.same(result.errors, undefined, 'no schema errors')
  t.ok(result.valid, 'valid OpenAPI')
  t.equal(validator.version, '3.1')

  t.ok(routes.length >= 20, `routes collected (${routes.length})`)
  for (const { method, url } of routes) {
    const path = url.replace(/:([A-Za-z]+)/g, '{$1}')
    const op = doc.paths[path]?.[method.toLowerCase()]
    t.ok(op, `${method} ${url} is documented`)
    if (!op) continue
    t.ok(op.tags?.length, `${method} ${url} is tagged`)
    t.ok(op.summary, `${method} ${url} is summarized`)
    t.ok(Array.isArray(op.security), `${method} ${url} says what it needs`)
    t.ok(Object.keys(op.responses ?? {}).length > 0, `${method} ${url} lists responses`)
    t.ok(op.responses?.['4XX'] && op.responses?.['5XX'], `${method} ${url} declares its problem responses`)
  }
  t.same(Object.keys(doc.components.securitySchemes).sort(), [
    'apiKey',
    'bearerAuth',
    'cookieAuth',
    'refreshCookie',
  ])
  // API keys: exactly the routes that declare a scope list the apiKey scheme, with that scope.
  const keyed: string[] = []
  for (const [path, operations] of Object.entries<Record<string, { security: Record<string, string[]>[] }>>(
    doc.paths,
  )) {
    for (const [method, op] of Object.entries(operations)) {
      const key = op.security.find((s) => 'apiKey' in s)
      if (key) keyed.push(`${method.toUpperCase()} ${path} ${key.apiKey?.join(' ')}`)
    }
  }
  t.same(keyed.sort(), [
    'DELETE /api/comments/{id} comments:write',
    'GET /api/admin/audit-events admin',
    'GET /api/admin/users admin',
    'GET /api/comments comments:read',
    'GET /api/comments/{id} comments:read',
    'GET /api/users/me profile:read',
    'GET /api/users/{username} profile:read',
    'PATCH /api/admin/users/{id} admin',
    'PATCH /api/comments/{id} comments:write',
    'POST /api/comments comments:write',
  ])
})

// biome-ignore lint/suspicious/noExplicitAny: a test walks the document as plain JSON
type Json = Record<string, any>
/** Every operation of the document, with its method and path. */
const operations = (doc: Json) =>
  Object.entries(doc.paths as Json).flatMap(([path, ops]) =>
    Object.entries(ops as Json).map(([method, op]) => ({ path, method, op: op as Json })),
  )

t.test('the document generates good clients: names, descriptions, examples, shared schemas', async (t) => {
  const app = await build(t)
  const doc = (await app.inject('/docs/json')).json<Json>()
  const ops = operations(doc)
  t.ok(ops.length >= 20)

  const ids = ops.map(({ op }) => op.operationId)
  t.equal(new Set(ids).size, ids.length, 'operationIds are unique')
  for (const { path, method, op } of ops) {
    const name = `${method.toUpperCase()} ${path}`
    t.match(op.operationId, /^[a-z]+[A-Za-z]*$/, `${name}: operationId ${op.operationId} is camelCase`)
    t.equal(op.operationId.startsWith('admin'), path.startsWith('/api/admin/'), `${name}: admin prefix`)
    for (const [status, response] of Object.entries(op.responses as Json)) {
      t.ok(response.description && response.description !== 'Default Response', `${name} ${status} described`)
      const types = Object.keys(response.content ?? {})
      if (status.startsWith('4') || status.startsWith('5'))
        t.same(types, ['application/problem+json'], `${name} ${status} is problem+json`)
      else if (status !== '204') t.same(types, ['application/json'], `${name} ${status} is JSON`)
    }
    const body = op.requestBody?.content['application/json']
    if (body) {
      const examples =
        body.example ?? body.examples ?? doc.components.schemas[body.schema.$ref?.split('/').pop()]?.examples
      t.ok(examples, `${name}: the request body has an example`)
    }
  }
  t.same(
    Object.fromEntries(
      ['login', 'listComments', 'createComment', 'adminUpdateUser'].map((id) => [id, ids.includes(id)]),
    ),
    { login: true, listComments: true, createComment: true, adminUpdateUser: true },
  )

  const schemas = doc.components.schemas as Json
  for (const name of ['Problem', 'User', 'Comment', 'CommentPage', 'AdminUserPage', 'AuditEventPage'])
    t.ok(schemas[name], `components.schemas.${name}`)
  for (const name of ['User', 'Comment', 'Problem', 'SignedIn'])
    t.ok(schemas[name].examples?.length, `${name} example`)
  const text = JSON.stringify(doc.paths)
  t.notMatch(text, /"requestId"/, 'the problem schema is referenced, never inlined in an operation')
  const problemRefs = text.match(/"#\/components\/schemas\/Problem"/g)?.length ?? 0
  t.ok(problemRefs >= ops.length * 2, 'every operation refers to Problem for 4XX and 5XX')
  const dangling = [...text.matchAll(/"#\/components\/schemas\/([^"]+)"/g)].filter(
    (m) => !schemas[m[1] ?? ''],
  )
  t.same(dangling, [], 'every $ref names a component')

  const described = new Set((doc.tags as Json[]).filter((tag) => tag.description).map((tag) => tag.name))
  t.same(
    [...new Set(ops.flatMap(({ op }) => op.tags))].filter((tag) => !described.has(tag)),
    [],
    'tags described',
  )
  t.ok(doc.servers?.length, 'a servers entry')

  for (const path of ['/api/comments', '/api/admin/users', '/api/admin/audit-events']) {
    const limit = doc.paths[path].get.parameters.find((p: Json) => p.name === 'limit')
    t.match(limit, { required: false, schema: { default: 20 } }, `${path}: limit is optional`)
  }
})

t.test('a list without limit answers its default page size', async (t) => {
  const app = await build(t)
  const res = await app.inject('/api/comments')
  t.equal(res.statusCode, 200)
  t.same(Object.keys(res.json()), ['items', 'nextCursor'])
})

t.test('Swagger UI is served only when DOCS_ENABLED', async (t) => {
  const on = await build(t, { env: { DOCS_ENABLED: 'true' } })
  const ui = await on.inject('/docs/')
  t.equal(ui.statusCode, 200)
  t.match(ui.headers['content-type'], /text\/html/)
  t.equal((await on.inject('/docs/json')).statusCode, 200)

  const off = await build(t, { env: { DOCS_ENABLED: 'false' } })
  t.equal((await off.inject('/docs')).statusCode, 404)
  t.equal((await off.inject('/docs/')).statusCode, 404)
  t.equal((await off.inject('/docs/json')).statusCode, 200, 'the document itself stays available')

  const prod = await build(t, { env: { NODE_ENV: 'production', JWT_SECRET: TEST_JWT_SECRET } })
  t.equal((await prod.inject('/docs/')).statusCode, 404, 'off by default in production')
})
