import { connect } from 'node:net'
import t from 'tap'
import { build, expectProblem } from '../../helper.js'

/** Edge regressions from the review of the router-refusal and OPTIONS changes: each failed before its fix. */

const longParam = (i: number) => `/api/comments/${'a'.repeat(150 + i)}`

t.test(
  'F1: behind a trusted gateway, router refusals spend the forwarded client’s budget, not a shared one',
  async (t) => {
    const app = await build(t, { env: { RATE_LIMIT_MAX: '3', TRUST_PROXY: '10.0.0.1' } })
    const via = (url: string, client: string) =>
      app.inject({ url, remoteAddress: '10.0.0.1', headers: { 'x-forwarded-for': client } })
    for (let i = 0; i < 3; i++) t.equal((await via(longParam(i), '203.0.113.66')).statusCode, 414)
    const attackerNext = await via('/api/comments', '203.0.113.66')
    t.equal(attackerNext.statusCode, 429, 'the scanner’s own budget is spent by its refusals')
    const victim = await via(longParam(0), '198.51.100.20')
    t.equal(victim.statusCode, 414, 'another client behind the same gateway is not limited by the scanner')
  },
)

t.test('F2: a CORS preflight from an allowed origin spends the global budget like any request', async (t) => {
  const app = await build(t, { env: { RATE_LIMIT_MAX: '2', CORS_ORIGINS: 'https://app.example.com' } })
  const preflight = () =>
    app.inject({
      method: 'OPTIONS',
      url: '/api/comments',
      remoteAddress: '198.51.100.30',
      headers: { origin: 'https://app.example.com' }, // no Access-Control-Request-Method: strictPreflight is off
    })
  t.equal((await preflight()).statusCode, 204)
  t.equal((await preflight()).statusCode, 204)
  expectProblem(t, await preflight(), 429, 'urn:bulwark:problem:rate-limited', 'preflight flood')
})

function raw(port: number, requestLine: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () =>
      socket.write(`${requestLine}\r\nHost: x\r\nConnection: close\r\n\r\n`),
    )
    let buf = ''
    socket.on('data', (d) => {
      buf += d.toString()
    })
    socket.on('close', () => resolve(Number(buf.split(' ')[1])))
    socket.on('error', reject)
  })
}

t.test('F3: an absolute-form request target does not tell admin routes from missing ones', async (t) => {
  const app = await build(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  for (const line of [
    'GET http://x/api/admin/users HTTP/1.1',
    'GET http://x/api/admin/nothing HTTP/1.1',
    'DELETE http://x/api/admin/users HTTP/1.1',
    'GET http://x/api/Admin/users HTTP/1.1',
    'OPTIONS http://x/api/admin/users HTTP/1.1',
  ]) {
    t.equal(await raw(port, line), 401, line)
  }
})
t.test('Redis down: router refusals are answered at once, no unhandled rejection', async (t) => {
  const rejections: unknown[] = []
  const onRejection = (e: unknown) => rejections.push(e)
  process.on('unhandledRejection', onRejection)
  t.teardown(() => process.off('unhandledRejection', onRejection))
  const app = await build(t, { env: { REDIS_URL: 'redis://127.0.0.1:1', RATE_LIMIT_MAX: '1' } })
  for (const url of [`/api/comments/${'a'.repeat(150)}`, '/api/comments/%zz', '/api/%E0%A4%A']) {
    const started = Date.now()
    const res = await app.inject({ url })
    t.ok(Date.now() - started < 5000, `${url.slice(0, 20)} answered promptly`)
    t.ok([400, 414].includes(res.statusCode), 'the refusal stands (fail open)')
    t.match(res.headers['content-type'], /^application\/problem\+json/)
  }
  await new Promise((r) => setImmediate(r))
  t.same(rejections, [])
})

t.test('route limits keep their own buckets: refusals do not spend register or refresh', async (t) => {
  const app = await build(t, { env: { RATE_LIMIT_MAX: '2', REGISTER_RATE_LIMIT_MAX: '5' } })
  const addr = '198.51.100.50'
  for (let i = 0; i < 3; i++)
    await app.inject({ url: `/api/comments/${'a'.repeat(150 + i)}`, remoteAddress: addr })
  expectProblem(t, await app.inject({ url: '/api/comments', remoteAddress: addr }), 429)
  const reg = await app.inject({
    method: 'POST',
    url: '/api/auth/register',
    remoteAddress: addr,
    payload: {},
  })
  t.not(reg.statusCode, 429, 'register has a budget of its own')
  t.equal(reg.headers['ratelimit-limit'], '5')
})
