import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import postgres from 'postgres'
import t from 'tap'
import { addQueryObserver } from '../../../lib/db-observer.js'
import metricsPlugin from '../../../plugins/app/metrics.js'
import {
  attemptLogin,
  build,
  expectProblem,
  refreshWith,
  scrapeMetrics,
  signUp,
  TEST_PASSWORD,
  testConfig,
  testDatabaseUrl,
} from '../../helper.js'

/** Prometheus metrics: off by default at no cost, and on their own listener when METRICS_PORT is set. */

const DURATION = 'bulwark_http_request_duration_seconds_count'
const QUERIES = 'bulwark_db_query_duration_seconds_count'
const REJECTIONS = 'bulwark_rate_limit_rejections_total'

t.test('off (METRICS_PORT unset): nothing registered, no hook, no query observer', async (t) => {
  const app = await build(t)
  t.equal(app.metrics, null)
  t.equal(app.server.listenerCount('request'), 1, "only Fastify's own request listener")
  const proto = Object.getPrototypeOf(app.sql`select 1`) as { handle: { name: string } }
  t.not(proto.handle.name, 'observedHandle', 'postgres.js is left untouched')
  expectProblem(t, await app.inject('/metrics'), 404, undefined, 'no /metrics on the public port')
})

t.test('the metrics plugin alone: off, it adds no hook and no request listener', async (t) => {
  /** The plugin on a bare Fastify with the real config, recording every hook and listener it adds. */
  async function register(env: Record<string, string>) {
    const app = Fastify()
    const sql = postgres(await testDatabaseUrl(), { max: 1 }) // never connects: nothing is sent
    t.teardown(async () => {
      await app.close()
      await sql.end()
    })
    const config = await testConfig(env)
    app.register(fp(async (a) => void a.decorate('config', config), { name: 'config' }))
    app.register(fp(async (a) => void a.decorate('sql', sql), { name: 'db' }))
    const added: string[] = []
    const addHook = app.addHook
    app.addHook = function recordHook(this: FastifyInstance, ...args: Parameters<typeof addHook>) {
      added.push(args[0])
      return addHook.apply(this, args)
    } as typeof addHook
    const listeners = app.server.listenerCount('request')
    app.register(metricsPlugin)
    await app.ready()
    return { app, added, listenersAdded: app.server.listenerCount('request') - listeners }
  }
  const off = await register({})
  t.equal(off.app.metrics, null)
  t.same(off.added, [], 'no hook')
  t.equal(off.listenersAdded, 0, 'no request listener')
  const on = await register({ METRICS_PORT: '0' })
  t.same(on.added.sort(), ['onClose', 'onResponse'], 'on, the same harness sees its hooks')
  t.equal(on.listenersAdded, 1)
})

t.test('a scrape counts routes, outcomes, limits and queries by bounded labels', async (t) => {
  const app = await build(t, {
    env: { METRICS_PORT: '0', LOGIN_RATE_LIMIT_MAX: '3', REFRESH_RATE_LIMIT_MAX: '3' },
  })
  const url = (await app.metrics?.listen()) ?? ''
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/, 'listens on METRICS_HOST, a free port')
  expectProblem(t, await app.inject('/metrics'), 404, undefined, 'the public port still has no /metrics')

  const user = await signUp(app, 'metrics') // a registration and a successful sign-in
  t.equal((await attemptLogin(app, user.username, 'Wrong-Password-Again-1')).statusCode, 401)
  const attacker = { remoteAddress: '198.51.100.7' }
  for (let i = 0; i < 3; i++) await attemptLogin(app, user.username, 'Wrong-Password-Again-1', attacker)
  const throttled = await attemptLogin(app, user.username, TEST_PASSWORD, attacker)
  expectProblem(t, throttled, 429, 'urn:bulwark:problem:rate-limited', 'the fourth attempt is throttled')

  t.equal((await refreshWith(app, user.refreshToken)).statusCode, 200, 'rotated')
  t.equal((await refreshWith(app, user.refreshToken)).statusCode, 200, 'a racing tab: grace')
  t.equal((await refreshWith(app, user.refreshToken)).statusCode, 401, 'a replay: reuse detected')
  expectProblem(t, await refreshWith(app, user.refreshToken), 429, undefined, "refresh's own limit")

  const commentId = randomUUID()
  const seen: string[] = []
  const stop = addQueryObserver(app.sql, () => (settled) => seen.push(settled.command ?? 'error'))
  const before = await scrapeMetrics(url)
  t.equal((await user.inject('/api/comments')).statusCode, 200)
  expectProblem(t, await user.inject(`/api/comments/${commentId}`), 404)
  stop()
  const missing = `/no/such/${randomUUID()}`
  expectProblem(t, await app.inject(missing), 404)
  expectProblem(t, await app.inject('/api/comments/%zz'), 400, undefined, 'refused by the router')

  const after = await scrapeMetrics(url)
  t.equal(after.contentType, 'text/plain; version=0.0.4; charset=utf-8')
  const requests = (route: string, status_class: string, method = 'GET') =>
    after.value(DURATION, { method, route, status_class })
  t.equal(requests('/api/comments', '2xx'), 1, 'the comment list, by its route')
  t.equal(requests('/api/comments/:id', '4xx'), 1, 'a comment, by its route template')
  t.equal(requests('/api/auth/login', '2xx', 'POST'), 1)
  t.equal(requests('/api/auth/login', '4xx', 'POST'), 5, 'four wrong passwords and a throttled one')
  t.equal(requests('/api/auth/refresh', '2xx', 'POST'), 2)
  t.equal(requests('/api/auth/refresh', '4xx', 'POST'), 2)
  t.equal(requests('unmatched', '4xx'), 2, 'two 404s (/metrics on the public port, a path) under one label')
  t.equal(after.value('bulwark_http_router_refusals_total', { status: '400' }), 1)
  t.equal(after.value('bulwark_http_requests_in_flight'), 0, 'inject never reaches the socket')

  const signIns = (outcome: string) => after.value('bulwark_sign_ins_total', { outcome })
  t.same(
    { success: signIns('success'), failure: signIns('failure'), throttled: signIns('throttled') },
    { success: 1, failure: 4, throttled: 1 },
    'sign-in outcomes',
  )
  const refreshes = (outcome: string) => after.value('bulwark_refreshes_total', { outcome })
  t.same(
    { rotated: refreshes('rotated'), grace: refreshes('grace'), reuse: refreshes('reuse_detected') },
    { rotated: 1, grace: 1, reuse: 1 },
    'refresh outcomes',
  )
  t.equal(after.value('bulwark_security_events_total', { event: 'auth.register' }), 1)
  t.equal(after.value(REJECTIONS, { limiter: 'login_address', route: '/api/auth/login' }), 1)
  t.equal(after.value(REJECTIONS, { limiter: 'route', route: '/api/auth/refresh' }), 1)
  t.equal(after.value(REJECTIONS), 2, 'no other limiter refused anything')

  const selects = seen.filter((c) => c === 'SELECT').length
  t.ok(selects > 0, 'the two comment requests ran queries')
  t.equal(
    after.value(QUERIES, { command: 'SELECT', outcome: 'ok' }) -
      before.value(QUERIES, { command: 'SELECT', outcome: 'ok' }),
    selects,
    'each query observed once, by command tag',
  )
  t.ok(after.value(QUERIES, { command: 'INSERT', outcome: 'ok' }) > 0)
  t.ok(after.value(QUERIES, { command: 'COMMIT', outcome: 'ok' }) > 0)
  t.equal(after.value('bulwark_db_queries_in_flight'), 0)
  t.equal(after.value('bulwark_db_pool_max_connections'), app.config.DATABASE_POOL_MAX)
  t.ok(after.value('nodejs_eventloop_lag_seconds') >= 0, 'default metrics: event-loop delay')
  t.ok(after.value('nodejs_heap_size_used_bytes') > 0, 'default metrics: heap')

  for (const raw of [commentId, user.id, missing, '%zz', user.username]) {
    t.notOk(after.text.includes(raw), `no raw URL or id in any label (${raw.slice(0, 12)})`)
  }
  const routes = new Set(after.samples.filter((s) => s.name === DURATION).map((s) => s.labels.route))
  t.ok(
    [...routes].every((r) => r === 'unmatched' || r?.startsWith('/')),
    'route templates only',
  )
})

t.test('failed and timed-out queries are labelled by their outcome', async (t) => {
  const app = await build(t, { env: { METRICS_PORT: '0', DATABASE_STATEMENT_TIMEOUT_MS: '200' } })
  const url = (await app.metrics?.listen()) ?? ''
  await t.rejects(app.sql`select 1 / 0`)
  await t.rejects(app.sql`select pg_sleep(2)`, { code: '57014' })
  const scraped = await scrapeMetrics(url)
  t.equal(scraped.value(QUERIES, { command: 'SELECT', outcome: 'error' }), 1, 'named from its text')
  t.equal(scraped.value(QUERIES, { command: 'SELECT', outcome: 'timeout' }), 1)
})

t.test('the global and router limits, load shedding, and requests in flight', async (t) => {
  const app = await build(t, {
    env: { METRICS_PORT: '0', RATE_LIMIT_MAX: '2' },
    setup: (app) => {
      app.get('/test/slow', { config: { rateLimit: false } }, async function slow() {
        await released
        return { ok: true }
      })
    },
  })
  let release = () => {}
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  const url = (await app.metrics?.listen()) ?? ''
  const scanner = { remoteAddress: '192.0.2.44' }
  for (let i = 0; i < 2; i++) await app.inject({ url: '/nothing', ...scanner })
  expectProblem(t, await app.inject({ url: '/nothing', ...scanner }), 429, undefined, 'the global limit')
  expectProblem(t, await app.inject({ url: '/api/comments/%zz', ...scanner }), 429, undefined, 'a refusal')

  const api = await app.listen({ host: '127.0.0.1', port: 0 })
  const slow = fetch(`${api}/test/slow`)
  const aborted = new AbortController()
  const abandoned = fetch(`${api}/test/slow`, { signal: aborted.signal }).catch(() => 'aborted')
  let during = await scrapeMetrics(url)
  for (let i = 0; i < 50 && during.value('bulwark_http_requests_in_flight') < 2; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    during = await scrapeMetrics(url)
  }
  t.equal(during.value('bulwark_http_requests_in_flight'), 2, 'two requests in flight')
  aborted.abort()
  t.equal(await abandoned, 'aborted')
  release()
  t.equal((await slow).status, 200)
  let after = await scrapeMetrics(url)
  for (let i = 0; i < 50 && after.value('bulwark_http_requests_in_flight') > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    after = await scrapeMetrics(url)
  }
  t.equal(after.value('bulwark_http_requests_in_flight'), 0, 'answered and abandoned ones are out')
  t.equal(after.value(REJECTIONS, { limiter: 'global', route: 'unmatched' }), 1)
  t.equal(after.value(REJECTIONS, { limiter: 'router', route: 'unmatched' }), 1)
  t.equal(after.value('bulwark_http_router_refusals_total', { status: '429' }), 1)

  // Node parses some 30 methods beyond the usual ones: a scanner's share one series.
  for (const method of ['PROPFIND', 'MKCOL']) {
    t.equal((await fetch(`${api}/api/comments`, { method })).status, 404, method)
  }
  const methods = await scrapeMetrics(url)
  const unmatched = methods.samples.filter((s) => s.name === DURATION && s.labels.route === 'unmatched')
  t.same([...new Set(unmatched.map((s) => s.labels.method))].sort(), ['GET', 'OTHER'])
  t.equal(methods.value(DURATION, { method: 'OTHER', route: 'unmatched' }), 2)

  const notFound = await fetch(url.replace('/metrics', '/other'))
  t.equal(notFound.status, 404, 'the metrics listener serves /metrics only')
  t.equal((await fetch(url, { method: 'POST' })).status, 405)
  t.equal((await fetch(url, { method: 'HEAD' })).status, 200)
})

t.test('load shedding is counted by the threshold passed', async (t) => {
  const app = await build(t, {
    env: {
      METRICS_PORT: '0',
      UNDER_PRESSURE_MAX_HEAP_USED_BYTES: '1',
      UNDER_PRESSURE_SAMPLE_INTERVAL_MS: '10',
    },
  })
  const url = (await app.metrics?.listen()) ?? ''
  let shed = await app.inject('/api/comments')
  for (let i = 0; i < 100 && shed.statusCode !== 503; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10))
    shed = await app.inject('/api/comments')
  }
  expectProblem(t, shed, 503, 'urn:bulwark:problem:overloaded')
  const scraped = await scrapeMetrics(url)
  t.equal(scraped.value('bulwark_load_shed_total', { reason: 'heapUsedBytes' }), 1)
  t.equal(scraped.value(DURATION, { route: '/api/comments', status_class: '5xx' }), 1)
})
