import t from 'tap'
import { buildApp } from '../../app.js'
import { loadConfig } from '../../lib/config.js'
import { build, expectProblem, PROBLEM_TYPE } from '../helper.js'

t.test('GET /health/live answers ok without touching the database', async (t) => {
  const app = await build(t)
  await app.sql.end()
  const res = await app.inject('/health/live')
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status: 'ok' })
})

t.test('GET /health/ready is 200 when the database answers and migrations are current', async (t) => {
  const app = await build(t)
  const res = await app.inject('/health/ready')
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status: 'ok' })
})

t.test('GET /health/ready is 503 when a migration is pending', async (t) => {
  const app = await build(t)
  app.latestMigrationId += 1
  const res = await app.inject('/health/ready')
  const body = expectProblem(t, res, 503, undefined, 'pending migration')
  t.equal(body.detail, 'Database migrations are pending.')
})

t.test('GET /health/ready is a 503 problem when the database is down', async (t) => {
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
    MIGRATE_ON_START: 'false',
    DATABASE_CONNECT_TIMEOUT_SECONDS: '1',
  })
  const app = await buildApp(config)
  t.teardown(() => app.close())
  const res = await app.inject('/health/ready')
  const body = expectProblem(t, res, 503, undefined, 'database down')
  t.equal(res.headers['retry-after'], '5')
  t.match(body, { title: 'Service Unavailable', detail: 'The database is not available.' })
  t.notMatch(res.body, /ECONNREFUSED|127\.0\.0\.1/, 'no driver message or host')
})

t.test('readiness turns 503 as soon as shutdown begins', async (t) => {
  let during: number | undefined
  let problemType: string | null = null
  const app = await build(t, {
    setup: (app) => {
      app.addHook('preClose', async () => {
        // The listener is still open while preClose runs: ask over the network, as a gateway would.
        const res = await fetch(
          `http://127.0.0.1:${app.server.address() && (app.server.address() as { port: number }).port}/health/ready`,
        )
        during = res.status
        problemType = res.headers.get('content-type')
      })
    },
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  await app.close()
  t.equal(during, 503)
  t.match(problemType, PROBLEM_TYPE)
  t.equal(app.lifecycle.draining, true)
})

t.test('regression (review 11): readiness probes the database at most once a second', async (t) => {
  const app = await build(t)
  let probes = 0
  const check = app.checkDatabasePrivileges
  app.checkDatabasePrivileges = async () => {
    probes++
    return check()
  }
  const answers = await Promise.all(Array.from({ length: 50 }, () => app.inject('/health/ready')))
  t.ok(answers.every((r) => r.statusCode === 200))
  for (let i = 0; i < 20; i++) await app.inject('/health/ready')
  t.ok(probes >= 1 && probes <= 2, `${probes} probes for 70 calls`)
  await new Promise((resolve) => setTimeout(resolve, 1100))
  await app.inject('/health/ready')
  t.ok(probes >= 2, 'a second later it probes again')
})
