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
  t.same(Object.keys(doc.components.securitySchemes).sort(), ['bearerAuth', 'cookieAuth', 'refreshCookie'])
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
