import t from 'tap'
import { loadConfig } from '../../../lib/config.js'
import { build, expectProblem, type InjectResponse } from '../../helper.js'

const API_HEADERS = {
  'content-security-policy': "default-src 'none';frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'x-frame-options': 'DENY',
}

t.test('the API header profile is on every class of response', async (t) => {
  const app = await build(t, {
    env: { RATE_LIMIT_MAX: '3', BCRYPT_COST: '4' },
    setup: (app) => {
      app.get('/test/crash', async () => {
        throw new Error('boom')
      })
    },
  })
  const responses = {
    '200': await app.inject({ url: '/health/live', remoteAddress: '10.5.0.1' }),
    '400': await app.inject({ url: '/api/comments?limit=0', remoteAddress: '10.5.0.2' }),
    '401': await app.inject({ url: '/api/users/me', remoteAddress: '10.5.0.3' }),
    '404': await app.inject({ url: '/nope', remoteAddress: '10.5.0.4' }),
    '415': await app.inject({
      method: 'POST',
      url: '/api/auth/login',
      headers: { 'content-type': 'text/plain' },
      payload: 'x',
      remoteAddress: '10.5.0.5',
    }),
    '500': await app.inject({ url: '/test/crash', remoteAddress: '10.5.0.6' }),
  } as Record<string, InjectResponse>
  for (let i = 0; i < 3; i++) await app.inject({ url: '/api/comments', remoteAddress: '10.5.0.7' })
  responses['429'] = await app.inject({ url: '/api/comments', remoteAddress: '10.5.0.7' })
  for (const [status, res] of Object.entries(responses)) {
    t.equal(String(res.statusCode), status)
    for (const [name, value] of Object.entries(API_HEADERS))
      t.equal(res.headers[name], value, `${status}: ${name}`)
    t.equal(res.headers['x-powered-by'], undefined, `${status}: no x-powered-by`)
    t.equal(res.headers.server, undefined, `${status}: no server header`)
    t.equal(res.headers['strict-transport-security'], undefined, `${status}: no HSTS over plain http`)
  }
})

t.test('HSTS when cookies are secure; Swagger UI gets its own policy only under /docs', async (t) => {
  const app = await build(t, { env: { COOKIE_SECURE: 'true', DOCS_ENABLED: 'true' } })
  const res = await app.inject('/health/live')
  t.equal(res.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains')
  const docs = await app.inject('/docs/')
  t.equal(docs.statusCode, 200)
  t.not(docs.headers['content-security-policy'], API_HEADERS['content-security-policy'], 'relaxed for the UI')
  t.match(docs.headers['content-security-policy'], /script-src/)
  const json = await app.inject('/docs/json')
  t.equal(json.headers['x-frame-options'], 'DENY')
})

t.test('CORS: exact allowed origins only, with credentials', async (t) => {
  const app = await build(t, { env: { CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' } })
  const get = (origin: string) => app.inject({ url: '/api/comments', headers: { origin } })
  for (const origin of ['https://app.example.com', 'http://localhost:5173']) {
    const res = await get(origin)
    t.equal(res.headers['access-control-allow-origin'], origin, `${origin} echoed`)
    t.equal(res.headers['access-control-allow-credentials'], 'true')
    t.match(res.headers.vary, /Origin/)
    t.match(res.headers['access-control-expose-headers'], /x-request-id/)
  }
  const foreign = [
    'null',
    'https://evil.example',
    'https://app.example.com.evil.io',
    'https://evilapp.example.com',
    'https://app.example.co',
    'http://app.example.com',
    'https://app.example.com:8443',
    'http://localhost:5174',
    'https://APP.EXAMPLE.COM',
  ]
  for (const origin of foreign) {
    const res = await get(origin)
    t.equal(res.statusCode, 200, `${origin}: the request itself still answers`)
    t.notOk(
      Object.keys(res.headers).some((h) => h.startsWith('access-control-allow-')),
      `${origin}: no Access-Control-Allow-* header`,
    )
  }
})

t.test('CORS preflight: 204 with methods, headers and max-age for allowed origins only', async (t) => {
  const app = await build(t, { env: { CORS_ORIGINS: 'https://app.example.com' } })
  const preflight = (origin: string) =>
    app.inject({
      method: 'OPTIONS',
      url: '/api/comments',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,authorization',
      },
    })
  const ok = await preflight('https://app.example.com')
  t.equal(ok.statusCode, 204)
  t.equal(ok.headers['access-control-allow-origin'], 'https://app.example.com')
  t.equal(ok.headers['access-control-allow-credentials'], 'true')
  t.match(ok.headers['access-control-allow-methods'], /POST/)
  t.match(ok.headers['access-control-allow-methods'], /DELETE/)
  t.match(ok.headers['access-control-allow-headers'], /authorization/)
  t.equal(ok.headers['access-control-max-age'], '600')
  // Browsers send preflights without credentials: the admin API's guard must not stand in their way.
  const admin = await app.inject({
    method: 'OPTIONS',
    url: '/api/admin/users',
    headers: { origin: 'https://app.example.com', 'access-control-request-method': 'PATCH' },
  })
  t.equal(admin.statusCode, 204, 'a preflight for an admin route is answered')
  t.equal(admin.headers['access-control-allow-origin'], 'https://app.example.com')
  for (const origin of ['null', 'https://evil.example', 'https://app.example.com.evil.io']) {
    const res = await preflight(origin)
    t.notOk(
      Object.keys(res.headers).some((h) => h.startsWith('access-control-allow-')),
      `${origin}: preflight grants nothing`,
    )
  }
})

t.test('a wildcard or a malformed origin is refused at boot', async (t) => {
  t.throws(() => loadConfig({ CORS_ORIGINS: '*' }), { message: /wildcard is not allowed/ })
  t.throws(() => loadConfig({ CORS_ORIGINS: 'https://*.example.com' }), {
    message: /wildcard is not allowed/,
  })
  t.throws(() => loadConfig({ CORS_ORIGINS: 'https://app.example.com/' }), { message: /exact origin/ })
  t.throws(() => loadConfig({ CORS_ORIGINS: 'app.example.com' }), { message: /exact origin/ })
  t.throws(
    () => loadConfig({ TRUST_PROXY: '2' }),
    { message: /TRUST_PROXY is invalid/ },
    'a hop count is refused',
  )
  t.throws(() => loadConfig({ TRUST_PROXY: 'gateway.local' }), { message: /TRUST_PROXY is invalid/ })
  t.same(loadConfig({ TRUST_PROXY: '10.0.0.0/8, ::1, loopback' }).TRUST_PROXY, [
    '10.0.0.0/8',
    '::1',
    'loopback',
  ])
})

t.test(
  'answers written before any hook (router errors) carry the same header profile as helmet',
  async (t) => {
    const app = await build(t)
    const routerError = await app.inject({ url: `/api/comments/${'a'.repeat(150)}` })
    const normal = await app.inject({ url: '/nope' })
    t.equal(routerError.statusCode, 414)
    for (const name of Object.keys(API_HEADERS)) {
      t.equal(routerError.headers[name], normal.headers[name], `${name} matches helmet's`)
    }
    t.ok(routerError.headers['x-request-id'])
  },
)

t.test(
  'router refusals spend the global budget; their 429 is a problem with the limit headers',
  async (t) => {
    const app = await build(t, { env: { RATE_LIMIT_MAX: '3' } })
    const probe = (i: number) =>
      app.inject({ url: `/api/comments/${'a'.repeat(150 + i)}`, remoteAddress: '198.51.100.7' })
    for (let i = 0; i < 3; i++) t.equal((await probe(i)).statusCode, 414, `probe ${i} refused by the router`)
    const limited = await probe(3)
    expectProblem(t, limited, 429, 'urn:bulwark:problem:rate-limited', 'router refusal over budget')
    t.ok(limited.headers['retry-after'], 'Retry-After set')
    t.equal(limited.headers['ratelimit-remaining'], '0')
    const badEscape = await app.inject({ url: '/api/comments/%zz', remoteAddress: '198.51.100.7' })
    t.equal(badEscape.statusCode, 429, 'a bad escape from the same client is limited too')
    const normal = await app.inject({ url: '/api/comments', remoteAddress: '198.51.100.7' })
    t.equal(normal.statusCode, 429, 'the probes spent the budget of ordinary requests')
    const other = await app.inject({ url: `/api/comments/${'a'.repeat(150)}`, remoteAddress: '198.51.100.8' })
    t.equal(other.statusCode, 414, 'another client keeps its own budget')
  },
)

t.test('OPTIONS answers are problems like any other (the cors catch-all route included)', async (t) => {
  const app = await build(t, { env: { RATE_LIMIT_MAX: '2' } })
  const options = () => app.inject({ method: 'OPTIONS', url: '/api/comments', remoteAddress: '198.51.100.9' })
  expectProblem(t, await options(), 404, 'about:blank', 'plain OPTIONS')
  await options()
  expectProblem(t, await options(), 429, 'urn:bulwark:problem:rate-limited', 'OPTIONS flood')
})

t.test('a preflight without Access-Control-Request-Method is not a text/plain 400', async (t) => {
  const app = await build(t, { env: { CORS_ORIGINS: 'https://app.example.com' } })
  const res = await app.inject({
    method: 'OPTIONS',
    url: '/api/comments',
    headers: { origin: 'https://app.example.com' },
  })
  t.equal(res.statusCode, 204, 'answered as an empty preflight, not a 400')
  t.equal(res.headers['content-type'], undefined, 'no text/plain body')
})
