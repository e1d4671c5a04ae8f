// Regressions from the security review of the auth issue, each named after what it found.
import bcrypt from 'bcrypt'
import t from 'tap'
import type { App } from '../../../app.js'
import type { Problem } from '../../../schemas/common.js'
import { hashPassword, SCHEME } from '../../../services/passwords.js'
import {
  attemptLogin,
  bearer,
  build,
  cookieValue,
  expectProblem,
  login,
  OTHER_PASSWORD,
  refreshWith as refresh,
  register,
  TEST_JWT_SECRET,
  TEST_PASSWORD,
  testConfig,
  uniqueName,
} from '../../helper.js'

/** Registers a fresh user through the API: their username. */
const signUp = async (app: App) => (await register(app, uniqueName('rg'))).username

t.test(
  'refresh racing a password change never deadlocks into a 500, and the change always wins',
  async (t) => {
    const app = await build(t, {
      env: { BCRYPT_COST: '4', DATABASE_POOL_MAX: '8', REFRESH_RATE_LIMIT_MAX: '1000' },
    })
    const username = await signUp(app)
    for (let round = 0; round < 20; round++) {
      const password = round % 2 ? OTHER_PASSWORD : TEST_PASSWORD
      const next = round % 2 ? TEST_PASSWORD : OTHER_PASSWORD
      const victim = await login(app, username, password)
      const attacker = await login(app, username, password)
      const [rotated, changed] = await Promise.all([
        refresh(app, attacker.refreshToken),
        app.inject({
          method: 'PUT',
          url: '/api/users/me/password',
          headers: bearer(victim.accessToken),
          payload: { currentPassword: password, newPassword: next },
        }),
      ])
      t.not(rotated.statusCode, 500, `round ${round}: refresh`)
      t.equal(changed.statusCode, 204, `round ${round}: password change`)
      const child = cookieValue(rotated, 'refresh_token')
      t.equal(
        child ? (await refresh(app, child)).statusCode : 401,
        401,
        `round ${round}: the other session is dead`,
      )
    }
  },
)

t.test('a consumed token replayed after its own expiry still revokes the family', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const s = await login(app, await signUp(app))
  const first = await refresh(app, s.refreshToken)
  const child = cookieValue(first, 'refresh_token') as string
  await app.sql`
    update refresh_tokens set used_at = now() - interval '8 days', expires_at = now() - interval '1 day'
    where used_at is not null and parent_id is null`
  const replayed = await refresh(app, s.refreshToken)
  t.equal(replayed.statusCode, 401)
  t.equal((await refresh(app, child)).statusCode, 401, 'the live child is revoked')
  const [event] = await app.sql`
    select count(*)::int as n from audit_events
    where event = 'auth.refresh.reuse_detected' and request_id = ${String(replayed.headers['x-request-id'])}`
  t.equal(event?.n, 1, 'audited once, for this replay')
})

t.test('crafted ids and NUL characters are 400, never 500', async (t) => {
  const app = await build(t, {
    env: { BCRYPT_COST: '10', NODE_ENV: 'production', JWT_SECRET: TEST_JWT_SECRET },
  })
  const s = await login(app, await signUp(app))
  for (const id of [
    'urn:uuid:00000000-0000-4000-8000-000000000000',
    'URN:UUID:00000000-0000-4000-8000-000000000000',
  ]) {
    const res = await app.inject({
      method: 'DELETE',
      url: `/api/auth/sessions/${id}`,
      headers: bearer(s.accessToken),
    })
    t.equal(res.statusCode, 400, id)
  }
  const nul = await app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { username: 'ali\u0000ce', password: 'x' },
  })
  // Names are printable ASCII: a NUL answers like any unknown name (it never reaches the database).
  expectProblem(t, nul, 401, 'urn:bulwark:problem:invalid-credentials', 'a NUL in the username')
})

t.test('the refresh cookie lives no longer than its token and session', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4', SESSION_MAX_AGE_SECONDS: '300' } })
  const s = await login(app, await signUp(app))
  const cookie = s.res.cookies.find((c) => c.name === 'refresh_token')
  t.ok(
    cookie?.maxAge !== undefined && cookie.maxAge <= 300 && cookie.maxAge >= 298,
    `Max-Age ${cookie?.maxAge}`,
  )
  const rotated = await refresh(app, s.refreshToken)
  const next = rotated.cookies.find((c) => c.name === 'refresh_token')
  t.ok(next?.maxAge !== undefined && next.maxAge <= 300, `rotated Max-Age ${next?.maxAge}`)
})

t.test('a problem from an early hook (CSRF) still carries x-request-id', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4', TRUST_PROXY: '127.0.0.1' } })
  const res = await app.inject({
    method: 'POST',
    url: '/api/auth/logout',
    headers: { origin: 'https://evil.example', 'x-request-id': 'gw-123' },
    cookies: { refresh_token: 'x'.repeat(43) },
  })
  t.equal(res.statusCode, 403)
  t.equal(res.headers['x-request-id'], 'gw-123')
})

t.test('every password rule is named at once, the policy ones included', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const username = uniqueName('rules')
  const res = await app.inject({
    method: 'POST',
    url: '/api/auth/register',
    payload: { username, email: 'bytes@example.com', password: `Bulwark-${username}` },
  })
  t.equal(res.statusCode, 400)
  t.same(
    res
      .json<Problem>()
      .errors?.map((e) => e.message)
      .sort(),
    ['contains the name of this service', 'contains your username'],
  )
})

t.test('a hash made under another cost is upgraded at the next login', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '5' } })
  const username = await signUp(app)
  const cheap = await hashPassword(TEST_PASSWORD, await testConfig({ BCRYPT_COST: '4' }))
  await app.sql`update users set password_hash = ${cheap} where username = ${username}`
  t.equal((await attemptLogin(app, username)).statusCode, 200)
  const [row] = await app.sql`select password_hash from users where username = ${username}`
  t.equal(bcrypt.getRounds(String(row?.passwordHash).slice(SCHEME.length)), 5)
  t.equal((await attemptLogin(app, username)).statusCode, 200, 'and still verifies')
})

t.test('two refresh cookies of the same name (cookie tossing) are refused', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const s = await login(app, await signUp(app))
  const res = await app.inject({
    method: 'POST',
    url: '/api/auth/refresh',
    headers: { cookie: `refresh_token=${'A'.repeat(43)}; refresh_token=${s.refreshToken}` },
  })
  t.equal(res.statusCode, 401)
  t.equal((await refresh(app, s.refreshToken)).statusCode, 200, 'the real token was not consumed')
})

t.test('an admin passes a user-level role check', async (t) => {
  const app = await build(t, {
    env: { BCRYPT_COST: '4' },
    setup: (app) => {
      app.get('/test/user-only', { onRequest: [app.authenticate, app.authorize('user')] }, async () => ({
        ok: true,
      }))
    },
  })
  const username = await signUp(app)
  await app.sql`update users set role = 'admin' where username = ${username}`
  const s = await login(app, username)
  t.equal((await app.inject({ url: '/test/user-only', headers: bearer(s.accessToken) })).statusCode, 200)
})

t.test(
  'regression (review 8): login names fold in ASCII only; a non-ASCII name is a plain 401',
  async (t) => {
    const app = await build(t, { env: { BCRYPT_COST: '4' } })
    const username = uniqueName('admin')
    await register(app, username)
    const upper = username.toUpperCase()
    t.equal((await attemptLogin(app, upper)).statusCode, 200, 'ASCII case does not matter')
    for (const lookalike of [upper.replace('I', 'İ'), username.replace('i', 'ı'), `${username}\u0307`]) {
      const res = await attemptLogin(app, lookalike)
      expectProblem(t, res, 401, 'urn:bulwark:problem:invalid-credentials', JSON.stringify(lookalike))
    }
    const profile = await app.inject({
      url: `/api/users/${encodeURIComponent(upper.replace('I', 'İ'))}`,
      headers: bearer((await login(app, username)).accessToken),
    })
    t.ok([400, 404].includes(profile.statusCode), `no profile by a lookalike name (${profile.statusCode})`)
  },
)

t.test('regression (review 9): the per-name budget tells no one which names exist', async (t) => {
  const app = await build(t, {
    env: { BCRYPT_COST: '4', LOGIN_ACCOUNT_MAX_FAILURES: '3', LOGIN_RATE_LIMIT_MAX: '1000' },
  })
  const bob = await signUp(app)
  const ghost = uniqueName('ghost')
  const burn = async (name: string) => {
    for (let i = 0; i < 3; i++)
      await attemptLogin(app, name, 'Wrong-Password-Guess', { remoteAddress: `10.9.9.${i}` })
  }
  await burn(bob)
  await burn(ghost)
  const spacedBob = await attemptLogin(app, ` ${bob} `, 'Wrong-Password-Guess', { remoteAddress: '10.9.8.1' })
  const spacedGhost = await attemptLogin(app, ` ${ghost} `, 'Wrong-Password-Guess', {
    remoteAddress: '10.9.8.2',
  })
  t.equal(spacedBob.statusCode, spacedGhost.statusCode, 'an existing and a missing name answer alike')
  t.equal(spacedGhost.statusCode, 429, 'a name and its padded spelling share one budget')
})

t.test('regression (review 10): a body of thousands of unknown keys gets a small answer', async (t) => {
  const app = await build(t)
  const payload: Record<string, string> = {
    username: uniqueName('amp'),
    email: 'a@example.com',
    password: TEST_PASSWORD,
  }
  for (let i = 0; i < 3000; i++) payload[`k${i}`] = 'x'
  const res = await app.inject({ method: 'POST', url: '/api/auth/register', payload })
  const body = expectProblem(t, res, 400, 'urn:bulwark:problem:validation-error')
  t.equal(body.errors?.length, 20, 'the first 20 field errors')
  t.equal(body.errorsOmitted, 2980, 'and the count of the rest')
  t.ok(res.body.length < 4096, `${res.body.length} bytes`)
})

t.test('regression (review): an unknown name costs a bcrypt compare like a wrong password', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '11', LOGIN_ACCOUNT_MAX_FAILURES: '100' } })
  const known = await signUp(app)
  const ghost = uniqueName('ghost')
  /** The fastest of five answers: noise on a shared machine only ever adds time. */
  const fastest = async (name: string) => {
    let best = Number.POSITIVE_INFINITY
    for (let i = 0; i < 5; i++) {
      const started = performance.now()
      const res = await attemptLogin(app, name, 'Wrong-Password-Guess', { remoteAddress: `10.8.0.${i}` })
      best = Math.min(best, performance.now() - started)
      t.equal(res.statusCode, 401)
    }
    return best
  }
  const wrongPassword = await fastest(known)
  const unknownName = await fastest(ghost)
  t.ok(
    unknownName >= wrongPassword * 0.5,
    `unknown name ${unknownName.toFixed(1)} ms, wrong password ${wrongPassword.toFixed(1)} ms`,
  )
})

t.test('regression (review 1): every answer that depends on who asks is no-store', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const username = await signUp(app)
  const s = await login(app, username)
  await app.sql`update users set role = 'admin' where username = ${username}`
  for (const url of [
    '/api/users/me',
    '/api/auth/sessions',
    `/api/users/${username}`,
    '/api/admin/users',
    '/api/admin/audit-events',
    '/api/auth/mfa',
  ]) {
    for (const how of ['bearer', 'cookie'] as const) {
      const res = await app.inject({
        url,
        ...(how === 'bearer'
          ? { headers: bearer(s.accessToken) }
          : { cookies: { access_token: s.accessToken } }),
      })
      t.equal(res.statusCode, 200, `${url} (${how})`)
      t.equal(res.headers['cache-control'], 'no-store', `${url} (${how}): no-store`)
    }
  }
  const refused = await app.inject({ url: '/api/users/me', headers: bearer('not.a.token') })
  t.equal(refused.headers['cache-control'], 'no-store', 'also a refusal of credentials')
  const anonymous = await app.inject('/api/comments?limit=1')
  t.equal(anonymous.headers['cache-control'], undefined, 'an anonymous public list stays cacheable')
  t.match(
    (await app.inject('/.well-known/jwks.json')).headers['cache-control'],
    /public/,
    'the JWKS keeps its own policy',
  )
})
