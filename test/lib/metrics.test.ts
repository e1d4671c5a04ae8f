import { connect } from 'node:net'
import { Gauge } from 'prom-client'
import t from 'tap'
import { MemoryCounterStore } from '../../lib/counter-store.js'
import { createMetrics } from '../../lib/metrics.js'
import { MAX_CONNECTIONS, serveMetrics } from '../../lib/metrics-server.js'
import { countedThrottle } from '../../plugins/app/metrics.js'
import { createLoginThrottle } from '../../services/login-throttle.js'
import { parseMetrics } from '../helper.js'

/** The instruments alone: which event is which outcome, and which budget refused a sign-in. */

async function values(metrics: ReturnType<typeof createMetrics>, name: string) {
  const samples = parseMetrics(await metrics.registry.metrics()).filter((s) => s.name === name)
  return Object.fromEntries(samples.map((s) => [Object.values(s.labels).join(','), s.value]))
}

t.test('audit events become sign-in and refresh outcomes; others are security events only', async (t) => {
  const metrics = createMetrics({ poolMax: 4 })
  metrics.securityEvent('auth.login.mfa_required', {})
  metrics.securityEvent('auth.mfa.code_failed', { stage: 'sign-in', reason: 'wrong' })
  metrics.securityEvent('auth.mfa.code_failed', { stage: 'reauthenticate', reason: 'wrong' })
  metrics.securityEvent('auth.throttled', { route: '/api/auth/mfa/verify' })
  metrics.securityEvent('auth.throttled', { route: '/api/users/me/password' })
  metrics.securityEvent('auth.refresh.reuse_detected', {})
  metrics.securityEvent('security.csrf_rejected', { method: 'POST', path: '/api/comments' })
  t.same(await values(metrics, 'bulwark_sign_ins_total'), { mfa_required: 1, mfa_failed: 1, throttled: 1 })
  t.same(await values(metrics, 'bulwark_refreshes_total'), { reuse_detected: 1 })
  t.same(await values(metrics, 'bulwark_security_events_total'), {
    'auth.login.mfa_required': 1,
    'auth.mfa.code_failed': 2,
    'auth.throttled': 2,
    'auth.refresh.reuse_detected': 1,
    'security.csrf_rejected': 1,
  })
})

t.test('request methods outside the usual seven share one label value', async (t) => {
  const metrics = createMetrics({ poolMax: 4 })
  for (const method of ['GET', 'DELETE', 'OPTIONS', 'PROPFIND', 'MKCOL', 'PURGE', 'M-SEARCH']) {
    metrics.requestAnswered(method, undefined, 404, 1)
  }
  t.same(await values(metrics, 'bulwark_http_request_duration_seconds_count'), {
    'GET,unmatched,4xx': 1,
    'DELETE,unmatched,4xx': 1,
    'OPTIONS,unmatched,4xx': 1,
    'OTHER,unmatched,4xx': 4,
  })
})

t.test('query labels come from a bounded set, never from statement text', async (t) => {
  const metrics = createMetrics({ poolMax: 4 })
  const settle = (command: string | undefined, text: string, error?: unknown) =>
    metrics.queryObserver()({ command, text, error })
  settle('SELECT', 'select 1')
  settle(undefined, '  update users set x = 1', { code: '55P03' })
  settle('CREATE', 'create table secret_name (id int)')
  settle(undefined, 'vacuum secret_table', new Error('no'))
  settle(undefined, '', null)
  const counts = await values(metrics, 'bulwark_db_query_duration_seconds_count')
  t.same(counts, {
    'SELECT,ok': 1,
    'UPDATE,lock_timeout': 1,
    'OTHER,ok': 1,
    'OTHER,error': 2,
  })
  t.same(await values(metrics, 'bulwark_db_pool_max_connections'), { '': 4 })
})

t.test('the login throttle counts each refusal by the budget that refused it', async (t) => {
  const metrics = createMetrics({ poolMax: 4 })
  const limits = {
    LOGIN_RATE_LIMIT_MAX: 1,
    LOGIN_RATE_LIMIT_WINDOW_MS: 60_000,
    LOGIN_ACCOUNT_MAX_FAILURES: 1,
    LOGIN_ACCOUNT_WINDOW_MS: 60_000,
    LOGIN_DEVICE_MAX_FAILURES: 1,
  }
  const store = new MemoryCounterStore()
  t.teardown(() => store.close())
  const throttle = countedThrottle(createLoginThrottle(store, limits), metrics, '/api/auth/login')
  for (const attempt of [
    () => throttle.admitClient('ip:192.0.2.1'),
    () => throttle.reserve({ account: 'user:1' }),
    () => throttle.reserve({ account: 'user:1', device: 'd1' }),
    () => throttle.reserveCode('1'),
  ]) {
    await attempt()
    await t.rejects(attempt(), { message: /^Too many/ }, 'refused by its budget')
  }
  t.same(await values(metrics, 'bulwark_rate_limit_rejections_total'), {
    'login_address,/api/auth/login': 1,
    'login_account,/api/auth/login': 1,
    'login_device,/api/auth/login': 1,
    'login_code,/api/auth/login': 1,
  })
})

t.test('a scrape that fails answers 500 and reports the error, without its detail', async (t) => {
  const metrics = createMetrics({ poolMax: 4 })
  new Gauge({
    name: 'broken',
    help: 'throws when collected',
    registers: [metrics.registry],
    collect() {
      throw new Error('collector broke: secret detail')
    },
  })
  const errors: unknown[] = []
  const server = await serveMetrics(metrics.registry, { host: '127.0.0.1', port: 0 }, (e) => errors.push(e))
  t.teardown(() => server.close())
  const res = await fetch(server.url)
  t.equal(res.status, 500)
  t.notMatch(await res.text(), /secret/)
  t.match(errors, [{ message: /collector broke/ }])
})

t.test('the metrics listener cuts off a slow client and caps its connections', async (t) => {
  const metrics = createMetrics({ poolMax: 4 })
  const server = await serveMetrics(metrics.registry, { host: '127.0.0.1', port: 0 }, () => {})
  t.teardown(() => server.close())
  const { hostname, port } = new URL(server.url)
  const open = (payload: string) => {
    const socket = connect(Number(port), hostname)
    socket.on('error', () => {})
    socket.resume() // read what the server sends, so its end closes the socket here
    socket.write(payload)
    t.teardown(() => socket.destroy())
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())))
    return { socket, closed }
  }
  const started = Date.now()
  const slow = open('GET /metrics HTTP/1.1\r\nHost: x\r\n') // never finishes its headers
  const cutOff = await Promise.race([slow.closed, new Promise<number>((r) => setTimeout(() => r(0), 9000))])
  t.ok(cutOff > 0 && cutOff - started < 8000, `closed near headersTimeout (5 s): ${cutOff - started} ms`)

  const held = Array.from({ length: MAX_CONNECTIONS }, () => open('GET /metrics HTTP/1.1\r\nHost: x\r\n'))
  await new Promise((resolve) => setTimeout(resolve, 200))
  const extra = open('')
  const refused = await Promise.race([extra.closed, new Promise<number>((r) => setTimeout(() => r(0), 2000))])
  t.ok(refused > 0, 'a connection beyond the cap is closed on arrival')
  for (const h of held) h.socket.destroy()
  await Promise.all(held.map((h) => h.closed))
  t.equal((await fetch(server.url)).status, 200, 'and scrapes are served again once they go')
})
