import { connect } from 'node:net'
import t from 'tap'
import { build, type InjectResponse } from '../helper.js'

/** The security headers, computed once (plugins/security-headers.ts), on every class of response. */

const API = {
  'content-security-policy': "default-src 'none';frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'x-frame-options': 'DENY',
}

function check(
  t: { equal: (a: unknown, b: unknown, m: string) => void },
  name: string,
  res: { headers: Record<string, unknown> },
  hsts: boolean,
) {
  for (const [h, v] of Object.entries(API)) t.equal(res.headers[h], v, `${name}: ${h}`)
  if (hsts)
    t.equal(res.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains', `${name}: hsts`)
  else t.equal(res.headers['strict-transport-security'], undefined, `${name}: no hsts`)
}

t.test('every response class carries the API profile', async (t) => {
  const app = await build(t, {
    env: { COOKIE_SECURE: 'true', CORS_ORIGINS: 'https://app.example.com', BODY_LIMIT_BYTES: '1024' },
    setup: (app) => {
      app.get(
        '/test/hook-throws',
        {
          onRequest: async () => {
            throw new Error('hook')
          },
        },
        async () => 'x',
      )
      app.get(
        '/test/prehandler-throws',
        {
          preHandler: async () => {
            throw new Error('pre')
          },
        },
        async () => 'x',
      )
    },
  })
  const cases: Record<string, InjectResponse> = {
    '404 GET': await app.inject('/nope'),
    '404 POST': await app.inject({ method: 'POST', url: '/nope', payload: {} }),
    '404 DELETE known path': await app.inject({ method: 'DELETE', url: '/health/live' }),
    'HEAD live': await app.inject({ method: 'HEAD', url: '/health/live' }),
    '413': await app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { username: 'x'.repeat(4000), password: 'y' },
    }),
    '415': await app.inject({
      method: 'POST',
      url: '/api/auth/login',
      headers: { 'content-type': 'text/plain' },
      payload: 'x',
    }),
    '400 bad json': await app.inject({
      method: 'POST',
      url: '/api/auth/login',
      headers: { 'content-type': 'application/json' },
      payload: '{',
    }),
    '414 router': await app.inject(`/api/users/${'a'.repeat(500)}`),
    '400 router %': await app.inject('/api/users/%zz'),
    preflight: await app.inject({
      method: 'OPTIONS',
      url: '/api/comments',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' },
    }),
    'onRequest hook throws': await app.inject('/test/hook-throws'),
    'preHandler throws': await app.inject('/test/prehandler-throws'),
  }
  // Each case is the class of response it names, or the header check below proves nothing about it.
  const expected: Record<string, number> = {
    '404 GET': 404,
    '404 POST': 404,
    '404 DELETE known path': 404,
    'HEAD live': 200,
    '413': 413,
    '415': 415,
    '400 bad json': 400,
    '414 router': 414,
    '400 router %': 400,
    preflight: 204,
    'onRequest hook throws': 500,
    'preHandler throws': 500,
  }
  t.same(Object.keys(cases).sort(), Object.keys(expected).sort(), 'every case has its status')
  for (const [name, res] of Object.entries(cases)) {
    t.equal(res.statusCode, expected[name], `${name}: status`)
    check(t, `${name} (${res.statusCode})`, res, true)
  }
})

t.test('503 from load shedding carries the profile', async (t) => {
  const app = await build(t, {
    env: { UNDER_PRESSURE_MAX_HEAP_USED_BYTES: '1', UNDER_PRESSURE_SAMPLE_INTERVAL_MS: '10' },
  })
  await new Promise((r) => setTimeout(r, 200))
  const res = await app.inject('/api/comments')
  t.equal(res.statusCode, 503)
  check(t, '503', res, false)
})

t.test("Node's early 400 and 431 carry the profile", async (t) => {
  const app = await build(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const raw = (data: string) =>
    new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1', () => s.end(data))
      let out = ''
      s.on('data', (d) => {
        out += d
      })
      s.on('close', () => resolve(out))
      s.on('error', () => resolve(out))
    })
  for (const [name, req] of [
    ['400', 'GARBAGE\r\n\r\n'],
    ['431', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`],
  ]) {
    const text = (await raw(req as string)).toLowerCase()
    t.match(text, /^http\/1\.1 4\d\d/, `${name}: status line`)
    for (const [h, v] of Object.entries(API)) t.ok(text.includes(`${h}: ${v.toLowerCase()}`), `${name}: ${h}`)
  }
})
