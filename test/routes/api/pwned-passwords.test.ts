// The breached-password range check against a local stand-in for a Pwned Passwords–compatible
// service: what it refuses, what an outage does, how long it may take, and what the service learns.
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { rangeParts } from '../../../lib/pwned-passwords.js'
import {
  attemptRegister,
  build,
  expectProblem,
  OTHER_PASSWORD,
  signUp,
  TEST_PASSWORD,
  uniqueName,
} from '../../helper.js'

const VALIDATION_ERROR = 'urn:bulwark:problem:validation-error'
const BREACHED = 'Harbor-Lantern-Breached-42'

type Mode = 'answer' | 'status-503' | 'hang' | 'garbage' | 'huge'

/**
 * A real HTTP server speaking the range API: GET /range/<5 hex> → `SUFFIX:COUNT` lines, with padding
 * entries (count 0) when asked for them. It records every request exactly as it arrived.
 */
async function standIn(t: Test, breached: string[] = [BREACHED]) {
  const state = { mode: 'answer' as Mode, padWith: [] as string[] }
  const seen: { method: string; url: string; headers: IncomingHttpHeaders; body: string }[] = []
  const counts = new Map(breached.map((p) => [createHash('sha1').update(p).digest('hex').toUpperCase(), 42]))
  const hanging = new Set<ServerResponse>()
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (chunk) => {
      body += chunk
    })
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body })
      const prefix = /^\/range\/([0-9A-Fa-f]{5})$/.exec(req.url ?? '')?.[1]?.toUpperCase()
      if (state.mode === 'hang') return void hanging.add(res)
      if (state.mode === 'status-503' || !prefix) return void res.writeHead(prefix ? 503 : 404).end()
      if (state.mode === 'garbage') return void res.end('<html>maintenance</html>')
      if (state.mode === 'huge') return void res.end(`${'0'.repeat(35)}:1\r\n`.repeat(40_000))
      const lines = [...counts].filter(([h]) => h.startsWith(prefix)).map(([h, n]) => `${h.slice(5)}:${n}`)
      // Padding: decoys with count 0 (the real service adds them on Add-Padding: true).
      if (req.headers['add-padding'] === 'true') {
        for (const suffix of state.padWith) lines.push(`${suffix}:0`)
        for (let i = 0; i < 50; i++)
          lines.push(`${createHash('sha1').update(`pad${i}`).digest('hex').slice(5).toUpperCase()}:0`)
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(lines.join('\r\n'))
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const res of hanging) res.destroy()
    server.closeAllConnections()
    server.close()
  })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { url, seen, state }
}

/** The details of the breach-check outages audited so far (every app of this file shares its database). */
const outages = async (app: Awaited<ReturnType<typeof build>>) =>
  (
    await app.sql<{ detail: Record<string, unknown> }[]>`
      select detail from audit_events where event = 'auth.password.breach_check_unavailable'
      order by created_at`
  ).map((r) => r.detail)

t.test('a breached password is refused, naming the reason; a clean one passes', async (t) => {
  const service = await standIn(t)
  const app = await build(t, { env: { BCRYPT_COST: '4', PWNED_PASSWORDS_URL: service.url } })
  const username = uniqueName('pw')
  const res = await attemptRegister(app, username, BREACHED)
  const problem = expectProblem(t, res, 400, VALIDATION_ERROR, 'breached')
  t.same(problem.errors, [{ path: 'body.password', message: 'has appeared in a data breach' }])
  t.equal((await app.sql`select 1 from users where username = ${username}`).length, 0, 'nothing written')
  t.equal((await attemptRegister(app, uniqueName('pw'), TEST_PASSWORD)).statusCode, 201, 'not breached')
  // A padding entry for the very suffix (count 0) is a decoy, not a breach.
  service.state.padWith = [rangeParts(OTHER_PASSWORD).suffix]
  t.equal(
    (await attemptRegister(app, uniqueName('pw'), OTHER_PASSWORD)).statusCode,
    201,
    'count 0 is padding',
  )
})

t.test(
  'k-anonymity: the stand-in only ever sees 5 hex characters of the SHA-1, with padding asked',
  async (t) => {
    const service = await standIn(t)
    const app = await build(t, { env: { BCRYPT_COST: '4', PWNED_PASSWORDS_URL: `${service.url}/` } })
    const user = await signUp(app, 'kanon')
    const change = await user.inject({
      method: 'PUT',
      url: '/api/users/me/password',
      payload: { currentPassword: TEST_PASSWORD, newPassword: BREACHED },
    })
    t.same(expectProblem(t, change, 400, VALIDATION_ERROR, 'change').errors, [
      { path: 'body.newPassword', message: 'has appeared in a data breach' },
    ])
    // NFD on the wire: the range is that of the NFKC form, the one that is stored.
    const nfd = 'Crème-Brûlée-Façade-7'.normalize('NFD')
    t.equal((await attemptRegister(app, uniqueName('pw'), nfd)).statusCode, 201)
    const passwords = [TEST_PASSWORD, BREACHED, nfd.normalize('NFKC')]
    t.equal(service.seen.length, passwords.length, 'one request per password set')
    for (const [i, request] of service.seen.entries()) {
      const sha1 = createHash('sha1')
        .update(passwords[i] ?? '')
        .digest('hex')
        .toUpperCase()
      t.equal(request.method, 'GET')
      t.equal(request.url, `/range/${sha1.slice(0, 5)}`, 'the first 5 hex characters, nothing else')
      t.equal(request.body, '', 'no body')
      t.equal(request.headers['add-padding'], 'true', 'Add-Padding asked')
      const everything = JSON.stringify(request)
      t.notOk(everything.includes(sha1.slice(5, 15)), 'no more of the hash anywhere in the request')
      t.notOk(everything.toLowerCase().includes(sha1.slice(5, 15).toLowerCase()), 'in any case')
      t.notOk(everything.includes(passwords[i] ?? ''), 'nor the password')
    }
  },
)

t.test('local rules run first: a too-short or common password never reaches the service', async (t) => {
  const service = await standIn(t)
  const app = await build(t, { env: { BCRYPT_COST: '4', PWNED_PASSWORDS_URL: service.url } })
  t.equal((await attemptRegister(app, uniqueName('pw'), 'Zq8-vLmw')).statusCode, 400)
  t.equal((await attemptRegister(app, uniqueName('pw'), 'passwordpassword')).statusCode, 400)
  t.equal(service.seen.length, 0)
})

t.test('an outage with PWNED_PASSWORDS_FAIL_OPEN=false is a 503 problem; nothing is written', async (t) => {
  const service = await standIn(t)
  service.state.mode = 'status-503'
  const app = await build(t, {
    env: { BCRYPT_COST: '4', PWNED_PASSWORDS_URL: service.url, PWNED_PASSWORDS_FAIL_OPEN: 'false' },
  })
  const before = (await outages(app)).length
  for (const mode of ['status-503', 'garbage', 'huge'] as const) {
    service.state.mode = mode
    const username = uniqueName('pw')
    const res = await attemptRegister(app, username, TEST_PASSWORD)
    const problem = expectProblem(t, res, 503, 'urn:bulwark:problem:service-unavailable', mode)
    t.match(problem.detail, /breached-password check is unavailable/)
    t.equal(res.headers['retry-after'], '30', `${mode}: Retry-After`)
    t.equal((await app.sql`select 1 from users where username = ${username}`).length, 0, `${mode}: no user`)
  }
  t.same(
    (await outages(app)).slice(before).map((d) => [d.reason, d.failOpen]),
    [
      ['status 503', false],
      ['malformed answer', false],
      ['the answer is too large', false],
    ],
    'each outage is audited with its reason',
  )
})

t.test(
  'an outage with PWNED_PASSWORDS_FAIL_OPEN=true passes (audited); the local rules still hold',
  async (t) => {
    const service = await standIn(t)
    service.state.mode = 'status-503'
    const app = await build(t, { env: { BCRYPT_COST: '4', PWNED_PASSWORDS_URL: service.url } })
    const before = (await outages(app)).length
    t.equal((await attemptRegister(app, uniqueName('pw'), TEST_PASSWORD)).statusCode, 201)
    t.equal((await attemptRegister(app, uniqueName('pw'), 'passwordpassword')).statusCode, 400, 'blocklist')
    t.same((await outages(app)).slice(before), [{ reason: 'status 503', failOpen: true }])
  },
)

t.test('a hanging or unreachable service is bounded by PWNED_PASSWORDS_TIMEOUT_MS', async (t) => {
  const service = await standIn(t)
  service.state.mode = 'hang'
  const env = { BCRYPT_COST: '4', PWNED_PASSWORDS_URL: service.url, PWNED_PASSWORDS_TIMEOUT_MS: '300' }
  const open = await build(t, { env })
  const closed = await build(t, { env: { ...env, PWNED_PASSWORDS_FAIL_OPEN: 'false' } })
  const before = (await outages(open)).length
  for (const [app, status] of [
    [open, 201],
    [closed, 503],
  ] as const) {
    const started = performance.now()
    const res = await attemptRegister(app, uniqueName('pw'), TEST_PASSWORD)
    const ms = performance.now() - started
    t.equal(res.statusCode, status, `fail ${status === 201 ? 'open' : 'closed'}: ${status}`)
    t.ok(ms >= 290 && ms < 2000, `answered after the 300 ms bound, not much later (${Math.round(ms)} ms)`)
  }
  t.same(
    (await outages(open)).slice(before).map((d) => [d.reason, d.failOpen]),
    [
      ['timeout', true],
      ['timeout', false],
    ],
    'audited as timeouts',
  )
  // Nothing listens there: refused at once, an outage like any other.
  const unreachable = await build(t, {
    env: { ...env, PWNED_PASSWORDS_URL: 'http://127.0.0.1:1', PWNED_PASSWORDS_FAIL_OPEN: 'false' },
  })
  const res = await attemptRegister(unreachable, uniqueName('pw'), TEST_PASSWORD)
  expectProblem(t, res, 503, 'urn:bulwark:problem:service-unavailable', 'unreachable')
})
