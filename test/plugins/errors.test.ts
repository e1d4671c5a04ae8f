import { Type } from '@sinclair/typebox'
import t from 'tap'
import type { App } from '../../app.js'
import { conflict, rateLimited } from '../../lib/errors.js'
import { isDatabaseUnavailable } from '../../plugins/errors.js'
import type { Problem } from '../../schemas/common.js'
import { build, expectProblem, PROBLEM_KEYS, TEST_JWT_SECRET } from '../helper.js'

/** Test-only routes: a validated echo, a crash, a coded error and a database call. */
const setup = (app: App) => {
  app.post(
    '/test/echo',
    {
      schema: {
        body: Type.Object(
          {
            username: Type.String({ minLength: 3, maxLength: 32 }),
            age: Type.Integer({ minimum: 0, maximum: 150 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ username: Type.String() }) },
      },
    },
    async (request) => request.body,
  )
  app.get('/test/crash', async () => {
    throw new Error('relation "secret_table" does not exist at db-host.internal:5432')
  })
  app.get('/test/conflict', async () => {
    throw conflict('That name is taken.')
  })
  app.get('/test/limited', async () => {
    throw rateLimited('Slow down.', { max: 3, resetMs: 1500 })
  })
  app.get('/test/db', async () => app.sql`select 1`)
}

t.test('an unknown route is a 404 problem', async (t) => {
  const app = await build(t, { setup })
  const res = await app.inject({ method: 'GET', url: '/no/such/thing?q=1' })
  const body = expectProblem(t, res, 404, 'about:blank')
  t.same(Object.keys(body), PROBLEM_KEYS)
  t.match(body, { type: 'about:blank', title: 'Not Found', status: 404, instance: '/no/such/thing' })
  t.equal(body.requestId, res.headers['x-request-id'])
})

t.test('validation failures list every failing field with a message', async (t) => {
  const app = await build(t, { setup })
  const res = await app.inject({
    method: 'POST',
    url: '/test/echo',
    payload: { username: 'ab', age: '5', extra: 1 },
  })
  const body = expectProblem(t, res, 400, 'urn:bulwark:problem:validation-error')
  t.same(
    body.errors?.map((e) => e.path).sort(),
    ['body.age', 'body.extra', 'body.username'],
    'body numbers are not coerced from strings; unknown properties are refused',
  )
  t.match(body.errors?.find((e) => e.path === 'body.username')?.message, /fewer than 3/)
  t.equal(body.errors?.find((e) => e.path === 'body.extra')?.message, 'is not an allowed property')

  const missing = await app.inject({ method: 'POST', url: '/test/echo', payload: {} })
  t.same(missing.json<Problem>().errors, [
    { path: 'body.username', message: 'is required' },
    { path: 'body.age', message: 'is required' },
  ])
})

t.test('malformed JSON, wrong content type and oversized bodies are 400, 415 and 413 problems', async (t) => {
  const app = await build(t, { setup, env: { BODY_LIMIT_BYTES: '1024' } })
  const cases = [
    { headers: { 'content-type': 'application/json' }, payload: '{"username":', status: 400 },
    { headers: { 'content-type': 'application/json' }, payload: '{"__proto__":{"x":1}}', status: 400 },
    { headers: { 'content-type': 'text/plain' }, payload: 'username=abc', status: 415 },
    {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'username=abc',
      status: 415,
    },
    {
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ username: 'a'.repeat(2000) }),
      status: 413,
    },
  ]
  for (const c of cases) {
    const res = await app.inject({ method: 'POST', url: '/test/echo', ...c })
    expectProblem(t, res, c.status, undefined, `${c.headers['content-type']} ${c.payload.slice(0, 20)}`)
  }
})

t.test('a catalogued error keeps its status, type and detail', async (t) => {
  const app = await build(t, { setup })
  const res = await app.inject('/test/conflict')
  const body = expectProblem(t, res, 409, 'urn:bulwark:problem:conflict')
  t.equal(res.headers['retry-after'], undefined)
  t.match(body, {
    title: 'Conflict',
    detail: 'That name is taken.',
  })
})

t.test('the error plugin adds the headers that belong to a problem type, from its data', async (t) => {
  const app = await build(t, { setup })
  const res = await app.inject('/test/limited')
  const body = expectProblem(t, res, 429, 'urn:bulwark:problem:rate-limited')
  t.equal(body.detail, 'Slow down.')
  t.equal(res.headers['retry-after'], '2', 'whole seconds, rounded up')
  t.equal(res.headers['ratelimit-limit'], '3')
  t.equal(res.headers['ratelimit-remaining'], '0')
  t.equal(res.headers['ratelimit-reset'], '2')
})

t.test('a 500 in production is generic; outside production it explains', async (t) => {
  const prod = await build(t, {
    setup,
    env: { NODE_ENV: 'production', JWT_SECRET: TEST_JWT_SECRET },
  })
  const res = await prod.inject('/test/crash')
  const body = expectProblem(t, res, 500, 'about:blank')
  t.same(Object.keys(body), PROBLEM_KEYS)
  t.equal(body.detail, 'An unexpected error occurred.')
  t.notMatch(res.body, /secret_table|db-host|at |\.ts/, 'no message, stack, SQL or host')

  const dev = await build(t, { setup })
  const devRes = await dev.inject('/test/crash')
  const devBody = expectProblem(t, devRes, 500, 'about:blank')
  t.match(devBody.detail, /secret_table/)
  t.match(devBody.stack, /crash|errors\.test/)
})

t.test('a lost database connection is a 503 with Retry-After, not a 500', async (t) => {
  const app = await build(t, { setup, env: { NODE_ENV: 'production', JWT_SECRET: TEST_JWT_SECRET } })
  t.equal((await app.inject('/test/db')).statusCode, 200)
  await app.sql.end()
  const res = await app.inject('/test/db')
  const body = expectProblem(t, res, 503, 'urn:bulwark:problem:service-unavailable')
  t.equal(res.headers['retry-after'], '5')
  t.equal(body.title, 'Service Unavailable')
})

t.test('database-unavailable detection', async (t) => {
  t.ok(isDatabaseUnavailable({ code: 'ECONNREFUSED' }))
  t.ok(isDatabaseUnavailable({ code: '08006' }), 'SQLSTATE class 08')
  t.ok(isDatabaseUnavailable({ code: '57P01' }), 'admin shutdown')
  t.notOk(isDatabaseUnavailable({ code: '23505' }), 'a unique violation is not an outage')
  t.notOk(isDatabaseUnavailable(null))
  t.notOk(isDatabaseUnavailable(new Error('x')))
})
