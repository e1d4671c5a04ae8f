import { setTimeout as sleep } from 'node:timers/promises'
import postgres, { type Sql } from 'postgres'
import t, { type Test } from 'tap'
import { type Migration, migrate } from '../../../lib/migrator.js'
import { createSql } from '../../../plugins/app/db.js'
import type { Problem } from '../../../schemas/common.js'
import {
  type App,
  build,
  createDatabase,
  expectProblem,
  holdInTransaction,
  type InjectResponse,
  logCapture,
  OTHER_PASSWORD,
  signUp,
  TEST_PASSWORD,
  testConfig,
  testDatabaseUrl,
} from '../../helper.js'

/**
 * Bounded database waits against the real PostgreSQL: a locked table, a locked row, a slow statement
 * and an idle transaction each answer 503 with Retry-After within the statement timeout plus one
 * second, liveness stays fast, readiness reports the saturation, and the service recovers alone.
 */

const STATEMENT_MS = 1000
const LOCK_MS = 500
const IDLE_MS = 1000
/** The promise: every answer within the statement timeout plus one second. */
const BOUND_MS = STATEMENT_MS + 1000
/**
 * Room for a noisy machine on top of that. Still meaningful: without the bounds no answer came for
 * over a minute, and with the connection settings alone the 30th request waited about 14 s.
 */
const SLACK_MS = 1000
const SHORT_BOUNDS = {
  DATABASE_STATEMENT_TIMEOUT_MS: String(STATEMENT_MS),
  DATABASE_LOCK_TIMEOUT_MS: String(LOCK_MS),
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: String(IDLE_MS),
  DATABASE_POOL_MAX: '3',
  BCRYPT_COST: '4',
}
const SERVICE_UNAVAILABLE = 'urn:bulwark:problem:service-unavailable'

/** Test-only routes: a statement slower than the statement timeout, and a transaction left idle. */
const setup = (app: App) => {
  app.get('/test/slow', async () => {
    await app.sql`select pg_sleep(5)`
    return { done: true }
  })
  app.get('/test/idle', async () => {
    await app.sql.begin(async (tx) => {
      await tx`select 1`
      await sleep(IDLE_MS + 400)
      await tx`select 1`
    })
    return { done: true }
  })
}

async function buildBounded(t: Test) {
  const log = logCapture()
  const app = await build(t, { env: SHORT_BOUNDS, logStream: log.stream, setup })
  return { app, log }
}

/** A second session, as another process would hold it: not the app's pool, no bounds of ours. */
async function otherSession(t: Test): Promise<Sql> {
  const sql = postgres(await testDatabaseUrl(), { max: 1, onnotice: () => {} })
  t.teardown(() => sql.end({ timeout: 1 }))
  return sql
}

/** The answer and how long it took from send. */
async function timed(send: () => Promise<InjectResponse>) {
  const start = performance.now()
  const res = await send()
  return { res, ms: Math.round(performance.now() - start) }
}

/** Asserts a 503 service-unavailable problem with Retry-After. */
function expectUnavailable(t: Test, res: InjectResponse, label: string): Problem {
  const body = expectProblem(t, res, 503, SERVICE_UNAVAILABLE, label)
  t.equal(res.headers['retry-after'], '5', `${label}: Retry-After`)
  t.equal(body.detail, 'The service is temporarily unavailable. Try again later.', `${label}: generic detail`)
  return body
}

/** Retries `send` until it answers 200 (the pool drains what the blockage left), or gives up. */
async function recovers(send: () => Promise<InjectResponse>, withinMs = 10_000): Promise<InjectResponse> {
  const until = performance.now() + withinMs
  let res = await send()
  while (res.statusCode !== 200 && performance.now() < until) {
    await sleep(200)
    res = await send()
  }
  return res
}

/** Log lines of `event`, and the codes they carry. */
const events = (lines: Record<string, unknown>[], event: string) => lines.filter((l) => l.event === event)
const codes = (lines: Record<string, unknown>[], event: string) => events(lines, event).map((l) => l.code)

t.test('every pool connection carries the three bounds', async (t) => {
  const { app } = await buildBounded(t)
  const [row] = await app.sql<{ statementTimeout: string; lockTimeout: string; idle: string }[]>`
    select current_setting('statement_timeout') as statement_timeout,
           current_setting('lock_timeout') as lock_timeout,
           current_setting('idle_in_transaction_session_timeout') as idle
  `
  t.same(row, { statementTimeout: '1s', lockTimeout: '500ms', idle: '1s' })
})

t.test('a locked table: 30 parallel lists all answer 503 in time, then recover', async (t) => {
  const { app, log } = await buildBounded(t)
  t.equal((await app.inject('/api/comments')).statusCode, 200, 'the list works before the lock')
  const locker = await holdInTransaction(
    await otherSession(t),
    (tx) => tx`lock table comments in access exclusive mode`,
  )
  let unlocked = false
  t.teardown(() => (unlocked ? undefined : locker.release()))

  const lists = Array.from({ length: 30 }, () => timed(() => app.inject('/api/comments')))
  // While every connection is busy behind the lock: liveness is fast, readiness reports it.
  await sleep(100)
  const live = await timed(() => app.inject('/health/live'))
  // Readiness shares one probe a second (routes/health READY_CACHE_MS), and a probe sent before the
  // lists reached the database answers 200 (seen in full runs): ask again until the blocked probe
  // answers, within two probe periods, while the lists still wait.
  let ready = await timed(() => app.inject('/health/ready'))
  for (const until = Date.now() + 2500; ready.res.statusCode === 200 && Date.now() < until; ) {
    await sleep(100)
    ready = await timed(() => app.inject('/health/ready'))
  }
  const answers = await Promise.all(lists)

  t.equal(live.res.statusCode, 200, 'liveness answers while the database is blocked')
  t.ok(live.ms < 500, `liveness answers fast (${live.ms} ms)`)
  const readyBody = expectProblem(
    t,
    ready.res,
    503,
    'urn:bulwark:problem:not-ready',
    'readiness while blocked',
  )
  t.equal(readyBody.detail, 'The database is saturated or not answering.')
  t.ok(ready.ms <= BOUND_MS + SLACK_MS, `readiness answers in time (${ready.ms} ms)`)

  const slowest = Math.max(...answers.map((a) => a.ms))
  t.comment(`30 lists answered 503 within ${slowest} ms (bound ${BOUND_MS} ms)`)
  t.same(
    answers.map((a) => a.res.statusCode),
    Array(30).fill(503),
    'every list is a 503',
  )
  for (const [i, { res }] of answers.entries()) {
    if (i === 0) expectUnavailable(t, res, 'list')
    else t.equal(res.headers['retry-after'], '5', `list ${i}: Retry-After`)
  }
  t.ok(slowest <= BOUND_MS + SLACK_MS, `every list answered within the bound (slowest ${slowest} ms)`)
  t.ok(codes(log.lines, 'db.timeout').includes('55P03'), 'the first wave ran into the lock timeout')
  t.ok(
    events(log.lines, 'request.deadline').length > 0,
    'the queued ones were answered by the request deadline',
  )

  await locker.release()
  unlocked = true
  const after = await recovers(() => app.inject('/api/comments'))
  t.equal(after.statusCode, 200, 'the same list works again once the lock is gone, without a restart')
  t.equal((await recovers(() => app.inject('/health/ready'))).statusCode, 200, 'readiness recovers')

  // Work that ended after its 503 was sent is noted once, quietly: no second answer, no error line.
  await sleep(300)
  t.ok(events(log.lines, 'request.late_result').length > 0, 'late results are noted')
  t.same(
    log.lines.filter((l) => l.level === 'error' || l.level === 'fatal').map((l) => l.msg),
    [],
    'nothing is logged as an error',
  )
  t.notOk(
    log.raw.some((line) => /already sent|Promise errored/.test(line)),
    'no late result tries to answer twice',
  )
})

t.test('a statement slower than the statement timeout is a 503 in time', async (t) => {
  const { app, log } = await buildBounded(t)
  // One more than the pool holds, so one waits for a connection as well.
  const answers = await Promise.all(Array.from({ length: 4 }, () => timed(() => app.inject('/test/slow'))))
  for (const { res, ms } of answers) {
    expectUnavailable(t, res, 'slow statement')
    t.ok(ms <= BOUND_MS + SLACK_MS, `answered in ${ms} ms`)
  }
  t.ok(codes(log.lines, 'db.timeout').includes('57014'), 'the statement timeout ended it')
  t.equal((await recovers(() => app.inject('/api/comments'))).statusCode, 200, 'the pool recovers')
})

t.test('a locked users row: a password change and an admin patch are 503 at the lock timeout', async (t) => {
  const { app, log } = await buildBounded(t)
  const user = await signUp(app, 'rowlock')
  const admin = await signUp(app, 'rowadmin', { role: 'admin' })
  const locker = await holdInTransaction(
    await otherSession(t),
    (tx) => tx`select id from users where id = ${user.id} for update`,
  )
  let unlocked = false
  t.teardown(() => (unlocked ? undefined : locker.release()))

  const change = await timed(() =>
    user.inject({
      method: 'PUT',
      url: '/api/users/me/password',
      payload: { currentPassword: TEST_PASSWORD, newPassword: OTHER_PASSWORD },
    }),
  )
  expectUnavailable(t, change.res, 'password change')
  const patch = await timed(() =>
    admin.inject({ method: 'PATCH', url: `/api/admin/users/${user.id}`, payload: { disabled: true } }),
  )
  expectUnavailable(t, patch.res, 'admin patch')
  t.same(codes(log.lines, 'db.timeout'), ['55P03', '55P03'], 'both ended at the lock timeout')
  t.ok(
    change.ms < STATEMENT_MS && patch.ms < STATEMENT_MS,
    `lock waits end first (${change.ms}, ${patch.ms} ms)`,
  )

  await locker.release()
  unlocked = true
  const retry = await admin.inject({
    method: 'PATCH',
    url: `/api/admin/users/${user.id}`,
    payload: { disabled: true },
  })
  t.equal(retry.statusCode, 200, 'the same patch works once the row is free')
})

t.test('a transaction left idle is ended by the server and answers 503', async (t) => {
  const { app, log } = await buildBounded(t)
  const { res, ms } = await timed(() => app.inject('/test/idle'))
  expectProblem(t, res, 503, SERVICE_UNAVAILABLE, 'idle transaction')
  t.ok(ms <= BOUND_MS + SLACK_MS, `answered in ${ms} ms`)
  // The server ends the session (25P03); postgres.js reports the closed connection of the transaction.
  t.ok(
    log.lines.some(
      (l) => l.code === '25P03' || (l.err as { code?: string } | undefined)?.code === 'CONNECTION_CLOSED',
    ),
    'the idle-in-transaction timeout ended it',
  )
  t.equal((await recovers(() => app.inject('/api/comments'))).statusCode, 200, 'the pool recovers')
})

t.test('migrations run under their own, longer bounds', async (t) => {
  const config = await testConfig({ ...SHORT_BOUNDS, DATABASE_URL: await createDatabase() })
  const sql = createSql(config)
  t.teardown(() => sql.end({ timeout: 1 }))
  const other = postgres(config.DATABASE_URL ?? '', { max: 1, onnotice: () => {} })
  t.teardown(() => other.end({ timeout: 1 }))
  await other`create table busy (id int)`
  // Another session holds the table longer than the pool's lock timeout, then lets go.
  const locker = await holdInTransaction(other, (tx) => tx`lock table busy in access exclusive mode`)
  const releaseLater = sleep(LOCK_MS * 3).then(() => locker.release())
  const slow: Migration = {
    id: 1,
    name: '0001_slow.sql',
    checksum: 'test',
    text: `alter table busy add column note text; select pg_sleep(${(STATEMENT_MS * 1.5) / 1000});`,
  }
  const result = await migrate(sql, [slow])
  await releaseLater
  t.same(
    result.applied,
    ['0001_slow.sql'],
    'a migration longer than the statement timeout, behind a lock, applies',
  )
  const [setting] = await sql<
    { statementTimeout: string }[]
  >`select current_setting('statement_timeout') as statement_timeout`
  t.equal(setting?.statementTimeout, '1s', 'the longer bounds ended with the migration transaction')
})
