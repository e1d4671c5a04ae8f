import t from 'tap'
import type { Problem } from '../../../schemas/common.js'
import {
  attemptRegister,
  bearer,
  build,
  expectProblem,
  type SignedInUser,
  signUp,
  TEST_PASSWORD,
  uniqueName,
} from '../../helper.js'

const RATE_LIMITED = 'urn:bulwark:problem:rate-limited'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('global limit: standard headers, a 429 problem with Retry-After, and a reset', async (t) => {
  const app = await build(t, { env: { RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '1500' } })
  const get = () => app.inject({ url: '/api/comments', remoteAddress: '10.0.0.7' })
  const first = await get()
  t.equal(first.statusCode, 200)
  t.equal(first.headers['ratelimit-limit'], '3')
  t.equal(first.headers['ratelimit-remaining'], '2')
  t.ok(Number(first.headers['ratelimit-reset']) >= 1)
  t.notOk(
    Object.keys(first.headers).some((h) => h.startsWith('x-ratelimit')),
    'no legacy X-RateLimit-* headers',
  )
  await get()
  await get()
  const limited = await get()
  const problem = expectProblem(t, limited, 429, RATE_LIMITED)
  t.equal(problem.title, 'Too Many Requests')
  t.ok(Number(limited.headers['retry-after']) >= 1)
  t.equal(limited.headers['ratelimit-remaining'], '0')
  t.equal(limited.headers['x-content-type-options'], 'nosniff', 'security headers on a 429 too')
  t.equal(
    (await app.inject({ url: '/api/comments', remoteAddress: '10.0.0.8' })).statusCode,
    200,
    'another client is unaffected',
  )
  await sleep(1600)
  t.equal((await get()).statusCode, 200, 'the window resets')
})

t.test('unknown routes count; health endpoints never do', async (t) => {
  const app = await build(t, { env: { RATE_LIMIT_MAX: '2' } })
  const ip = { remoteAddress: '10.0.0.9' }
  t.equal((await app.inject({ url: '/nope', ...ip })).statusCode, 404)
  t.equal((await app.inject({ url: '/nope', ...ip })).headers['ratelimit-remaining'], '0')
  t.equal((await app.inject({ url: '/nope', ...ip })).statusCode, 429, 'scanning is limited')
  for (let i = 0; i < 5; i++) {
    const live = await app.inject({ url: '/health/live', ...ip })
    t.equal(live.statusCode, 200)
    t.equal(live.headers['ratelimit-limit'], undefined)
    t.equal((await app.inject({ url: '/health/ready', ...ip })).statusCode, 200)
  }
})

t.test('a signed-in user has a budget of their own; IPv6 clients are grouped by /64', async (t) => {
  const app = await build(t, {
    env: { RATE_LIMIT_MAX: '3', BCRYPT_COST: '4', REGISTER_RATE_LIMIT_MAX: '50' },
  })
  const alice = await signUp(app, 'rl', { remoteAddress: '10.2.0.1' })
  const bob = await signUp(app, 'rl', { remoteAddress: '10.2.0.1' })
  const as = (user: SignedInUser) => user.inject({ url: '/api/comments', remoteAddress: '10.2.0.1' })
  for (let i = 0; i < 3; i++) t.equal((await as(alice)).statusCode, 200)
  t.equal((await as(alice)).statusCode, 429, 'alice is limited')
  t.equal((await as(bob)).statusCode, 200, 'bob, behind the same address, is not')
  const forged = await app.inject({
    url: '/api/comments',
    remoteAddress: '10.2.0.9',
    headers: { authorization: 'Bearer forged.token.here' },
  })
  t.equal(forged.headers['ratelimit-remaining'], '2', 'an invalid token counts against the address')
  // Regression (review): tokens that decode but are not ours (unsigned, or signed with another key),
  // each with a fresh `sub`, must not buy fresh budgets: only a verified token names a user.
  const unsigned = (sub: string) => {
    const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
    const now = Math.floor(Date.now() / 1000)
    const claims = { sub, sid: sub, iss: 'bulwark', aud: 'bulwark-api', iat: now, exp: now + 600 }
    return `${part({ alg: 'HS256', typ: 'at+jwt' })}.${part(claims)}.${'A'.repeat(43)}`
  }
  const minted = []
  for (let i = 0; i < 4; i++) {
    const sub = `00000000-0000-4000-8000-00000000000${i}`
    minted.push(
      await app.inject({ url: '/api/comments', remoteAddress: '10.2.0.10', headers: bearer(unsigned(sub)) }),
    )
  }
  t.same(
    minted.map((r) => r.statusCode),
    [200, 200, 200, 429],
    'minted subs share the address budget',
  )

  const v6 = (addr: string) => app.inject({ url: '/api/comments', remoteAddress: addr })
  for (const addr of ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:ffff::3'])
    t.equal((await v6(addr)).statusCode, 200)
  t.equal((await v6('2001:db8:1:2::4')).statusCode, 429, 'the same /64 shares one bucket')
  t.equal((await v6('2001:db8:1:3::1')).statusCode, 200, 'the next /64 does not')
})

t.test('without TRUST_PROXY, forwarding headers cannot mint new buckets', async (t) => {
  const app = await build(t, { env: { RATE_LIMIT_MAX: '2' } })
  const spoof = (i: number) =>
    app.inject({
      url: '/api/comments',
      remoteAddress: '10.3.0.1',
      headers: {
        'x-forwarded-for': `198.51.100.${i}`,
        'x-real-ip': `198.51.100.${i}`,
        forwarded: `for=198.51.100.${i}`,
        'true-client-ip': `198.51.100.${i}`,
      },
    })
  t.equal((await spoof(1)).statusCode, 200)
  t.equal((await spoof(2)).statusCode, 200)
  t.equal((await spoof(3)).statusCode, 429, 'rotating the headers does not help')
})

t.test('with TRUST_PROXY, the client is the address the trusted gateway saw', async (t) => {
  const app = await build(t, { env: { RATE_LIMIT_MAX: '2', TRUST_PROXY: '10.9.0.0/16' } })
  const via = (gateway: string, xff: string) =>
    app.inject({ url: '/api/comments', remoteAddress: gateway, headers: { 'x-forwarded-for': xff } })
  t.equal((await via('10.9.0.5', '203.0.113.1')).statusCode, 200)
  t.equal((await via('10.9.0.6', '203.0.113.1')).statusCode, 200)
  t.equal((await via('10.9.0.5', '203.0.113.1')).statusCode, 429, 'one client behind two gateway nodes')
  t.equal((await via('10.9.0.5', '203.0.113.2')).statusCode, 200, 'another client has its own budget')
  t.equal(
    (await via('10.9.0.5', '203.0.113.1, 10.9.0.7')).statusCode,
    429,
    'entries added by trusted hops are skipped to find the client',
  )
  // An entry the client wrote itself, left of an untrusted hop, is not believed.
  t.equal((await via('10.9.0.5', '1.1.1.1, 203.0.113.1')).statusCode, 429)
  t.equal((await via('192.0.2.50', '203.0.113.99')).statusCode, 200)
  t.equal((await via('192.0.2.50', '203.0.113.98')).statusCode, 200)
  t.equal((await via('192.0.2.50', '203.0.113.97')).statusCode, 429, 'an untrusted peer is the client itself')
})

t.test('login: per-address limit, and a per-account failure limit across many addresses', async (t) => {
  const app = await build(t, {
    env: {
      BCRYPT_COST: '4',
      TRUST_PROXY: '10.9.0.1',
      LOGIN_RATE_LIMIT_MAX: '3',
      LOGIN_ACCOUNT_MAX_FAILURES: '4',
      LOGIN_ACCOUNT_WINDOW_MS: '1500',
      RATE_LIMIT_MAX: '1000',
    },
  })
  const { username } = await signUp(app, 'rl', { remoteAddress: '10.9.0.1' })
  const attempt = (client: string, password: string, name = username) =>
    app.inject({
      method: 'POST',
      url: '/api/auth/login',
      remoteAddress: '10.9.0.1',
      headers: { 'x-forwarded-for': client },
      payload: { username: name, password },
    })
  // signUp logged in once from the gateway address itself; use fresh client addresses now.
  for (let i = 0; i < 3; i++) t.equal((await attempt('203.0.113.10', 'Wr0ngPass')).statusCode, 401)
  const perIp = await attempt('203.0.113.10', TEST_PASSWORD)
  expectProblem(t, perIp, 429, RATE_LIMITED, 'a 4th attempt from one address')
  t.ok(Number(perIp.headers['retry-after']) >= 1)

  // A botnet: one more failure from a new address reaches the account's failure limit.
  t.equal((await attempt('203.0.113.11', 'Wr0ngPass')).statusCode, 401)
  const locked = await attempt('203.0.113.12', TEST_PASSWORD)
  t.equal(locked.statusCode, 429, 'even the right password waits while the account is throttled')
  t.match(locked.json<Problem>().detail, /this account/)
  const unknown = await attempt('203.0.113.13', 'Wr0ngPass', uniqueName('ghost'))
  t.equal(unknown.statusCode, 401, 'another account is unaffected')
  await sleep(1600)
  t.equal((await attempt('203.0.113.14', TEST_PASSWORD)).statusCode, 200, 'no permanent lockout')
})

t.test('register and refresh have limits of their own', async (t) => {
  const app = await build(t, {
    env: {
      BCRYPT_COST: '4',
      REGISTER_RATE_LIMIT_MAX: '2',
      REFRESH_RATE_LIMIT_MAX: '2',
      RATE_LIMIT_MAX: '1000',
    },
  })
  const register = () => attemptRegister(app, uniqueName('reg'), TEST_PASSWORD, { remoteAddress: '10.4.0.1' })
  t.equal((await register()).statusCode, 201)
  const second = await register()
  t.equal(second.statusCode, 201)
  t.equal(second.headers['ratelimit-limit'], '2')
  t.equal((await register()).statusCode, 429)
  const refresh = () =>
    app.inject({
      method: 'POST',
      url: '/api/auth/refresh',
      remoteAddress: '10.4.0.2',
      cookies: { refresh_token: 'x'.repeat(43) },
    })
  t.equal((await refresh()).statusCode, 401)
  t.equal((await refresh()).statusCode, 401)
  t.equal((await refresh()).statusCode, 429)
})

t.test('regression: refused authentication and admin probing count against the global limit', async (t) => {
  const app = await build(t, { env: { RATE_LIMIT_MAX: '3' } })
  const probe = (url: string, headers: Record<string, string> = {}) =>
    app.inject({ url, remoteAddress: '10.6.0.1', headers })
  t.equal((await probe('/api/users/me')).statusCode, 401)
  t.equal((await probe('/api/admin/users', { authorization: 'Bearer junk' })).statusCode, 401)
  const third = await probe('/API/admin/users')
  t.equal(third.statusCode, 401)
  t.equal(third.headers['ratelimit-remaining'], '0')
  t.equal((await probe('/api/users/me')).statusCode, 429, 'token probing is throttled')
})

t.test(
  'regression: racing wrong passwords cannot exceed the account budget; username and email share it',
  async (t) => {
    const app = await build(t, {
      env: { BCRYPT_COST: '6', LOGIN_ACCOUNT_MAX_FAILURES: '3', LOGIN_RATE_LIMIT_MAX: '1000' },
    })
    const { username } = await signUp(app, 'rl', { remoteAddress: '10.7.0.1' })
    const attempt = (name: string, i: number) =>
      app.inject({
        method: 'POST',
        url: '/api/auth/login',
        remoteAddress: `10.7.1.${i}`,
        payload: { username: name, password: 'Wr0ngPass' },
      })
    const raced = await Promise.all(Array.from({ length: 12 }, (_, i) => attempt(username, i)))
    const codes = raced.map((r) => r.statusCode)
    t.equal(codes.filter((c) => c === 401).length, 3, `only the budget is tried (${codes})`)
    t.equal(codes.filter((c) => c === 429).length, 9)
    const byEmail = await attempt(`${username}@example.com`, 50)
    t.equal(byEmail.statusCode, 429, 'the email names the same account and the same budget')
  },
)
