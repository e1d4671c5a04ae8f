import type { Static } from '@sinclair/typebox'
import t from 'tap'
import type { LoginResponse, SessionList, TokenResponse, UserEnvelope } from '../../../schemas/auth.js'
import type { Problem } from '../../../schemas/common.js'
import {
  attemptLogin,
  attemptRegister,
  bearer,
  build,
  cookieValue,
  expectEvery,
  expectProblem,
  injectAs,
  login,
  OTHER_PASSWORD,
  PROBLEM_TYPE,
  refreshWith,
  register,
  type Session,
  TEST_PASSWORD,
  uniqueName,
} from '../../helper.js'

const VALIDATION_ERROR = 'urn:bulwark:problem:validation-error'

t.test('register → login → me → refresh → logout, with cookies', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const username = uniqueName('user')
  // A mixed-case email on purpose: it is stored lower-case.
  const registered = await attemptRegister(app, username, TEST_PASSWORD, { email: `${username}@Example.COM` })
  const { user } = registered.json<Static<typeof UserEnvelope>>()
  let session: Session
  let next = ''

  await t.test('register is a 201 with the public fields only, the email lower-cased', async (t) => {
    t.equal(registered.statusCode, 201)
    t.same(
      Object.keys(user).sort(),
      ['createdAt', 'email', 'emailVerified', 'id', 'role', 'username'],
      'nothing but the public fields',
    )
    t.equal(user.email, `${username}@example.com`, 'email stored lower-case')
    t.equal(user.role, 'user')
  })

  await t.test('login is case-insensitive on the username, works by email, and is not cached', async (t) => {
    session = await login(app, username.toUpperCase())
    t.equal(session.res.statusCode, 200, 'login is case-insensitive on the username')
    t.match(session.res.json<Static<typeof LoginResponse>>(), {
      tokenType: 'Bearer',
      expiresIn: 900,
      user: { id: user.id },
    })
    t.equal(session.res.headers['cache-control'], 'no-store')
    const byEmail = await attemptLogin(app, `${username}@EXAMPLE.com`)
    t.equal(byEmail.statusCode, 200, 'login by email')
  })

  await t.test('the access token authenticates by header, by cookie, with any scheme case', async (t) => {
    const me = await app.inject({ url: '/api/users/me', headers: bearer(session.accessToken) })
    t.equal(me.statusCode, 200)
    t.same(me.json<Static<typeof UserEnvelope>>().user, user)
    const viaCookie = await app.inject({
      url: '/api/users/me',
      cookies: { access_token: session.accessToken },
    })
    t.equal(viaCookie.statusCode, 200, 'the access cookie authenticates too')
    const lower = await app.inject({
      url: '/api/users/me',
      headers: { authorization: `bearer ${session.accessToken}` },
    })
    t.equal(lower.statusCode, 200, 'the auth scheme is case-insensitive (RFC 9110 §11.1)')
  })

  await t.test('refresh issues a new refresh token and a working access token', async (t) => {
    const rotated = await refreshWith(app, session.refreshToken)
    t.equal(rotated.statusCode, 200)
    t.equal(rotated.headers['cache-control'], 'no-store')
    next = cookieValue(rotated, 'refresh_token') ?? ''
    t.ok(next && next !== session.refreshToken, 'a new refresh token is issued')
    const accessToken = rotated.json<Static<typeof TokenResponse>>().accessToken
    t.equal((await injectAs(app, accessToken)('/api/users/me')).statusCode, 200)
  })

  await t.test('logout clears both cookies and kills the session; without one it is still 204', async (t) => {
    const out = await app.inject({
      method: 'POST',
      url: '/api/auth/logout',
      cookies: { refresh_token: next },
    })
    t.equal(out.statusCode, 204)
    t.same(
      out.cookies.map((c) => [c.name, c.maxAge]),
      [
        ['access_token', 0],
        ['refresh_token', 0],
      ],
    )
    t.equal((await refreshWith(app, next)).statusCode, 401, 'the logged-out refresh token is dead')
    t.equal(
      (await app.inject({ url: '/api/users/me', headers: bearer(session.accessToken) })).statusCode,
      401,
    )
    const again = await app.inject({ method: 'POST', url: '/api/auth/logout' })
    t.equal(again.statusCode, 204, 'logout without a session is still 204')
  })
})

t.test('registration validation names each failing rule', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ username: 'ab', email: 'a@b.io', password: TEST_PASSWORD }, 'body.username', /3–32/],
    [{ username: 'bad name!', email: 'a@b.io', password: TEST_PASSWORD }, 'body.username', /letters, digits/],
    [{ username: 'a'.repeat(33), email: 'a@b.io', password: TEST_PASSWORD }, 'body.username', /3–32/],
    [{ username: 'okname', email: 'not-an-email', password: TEST_PASSWORD }, 'body.email', /valid email/],
    [
      { username: 'okname', email: `${'a'.repeat(250)}@b.io`, password: TEST_PASSWORD },
      'body.email',
      /valid email/,
    ],
    [{ username: 'okname', email: 'a@b.io', password: 'Sh0rt' }, 'body.password', /at least 15 characters/],
    [{ username: 'okname', email: 'a@b.io', password: 12345 }, 'body.password', /must be a string/],
    [
      { username: 'okname', email: 'a@b.io', password: 'x'.repeat(1025) },
      'body.password',
      /at most 256 characters/,
    ],
    [
      { username: 'okname', email: 'a@b.io', password: TEST_PASSWORD, role: 'admin' },
      'body.role',
      /not an allowed/,
    ],
  ]
  for (const [payload, path, message] of cases) {
    const res = await app.inject({ method: 'POST', url: '/api/auth/register', payload })
    const problem = expectProblem(t, res, 400, VALIDATION_ERROR, path)
    const err = problem.errors?.find((e) => e.path === path)
    t.match(err?.message, message, `${path}: ${err?.message}`)
  }
  const weak = await app.inject({
    method: 'POST',
    url: '/api/auth/register',
    payload: { username: 'okname', email: 'a@b.io', password: 'password' },
  })
  t.same(
    weak
      .json<Problem>()
      .errors?.map((e) => e.message)
      .sort(),
    ['is too common', 'must be at least 15 characters'],
    'every broken password rule at once',
  )
  const [count] = await app.sql`select count(*)::int as n from users where username = 'okname'`
  t.equal(count?.n, 0, 'no row was written')
})

t.test(
  'duplicates: a case-variant username is 409, a case-variant email creates nothing (and says so to no one); concurrent registration gives one 201',
  async (t) => {
    const app = await build(t, { env: { BCRYPT_COST: '4' } })
    const { username } = await register(app, uniqueName('user'))
    const upper = await attemptRegister(app, username.toUpperCase(), TEST_PASSWORD, {
      email: 'other@example.com',
    })
    t.equal(upper.statusCode, 409)
    t.match(upper.json<Problem>(), {
      type: 'urn:bulwark:problem:conflict',
      errors: [{ path: 'body.username' }],
    })
    // Issue 15: an email with an account is answered like a new one (OWASP ASVS 5.0 6.3.8), and
    // uniqueness still holds: no second row (test/routes/api/register-enumeration.test.ts has the rest).
    const second = uniqueName('x')
    const sameEmail = await attemptRegister(app, second, TEST_PASSWORD, {
      email: `${username}@example.com`.toUpperCase(),
    })
    t.equal(sameEmail.statusCode, 201)
    const [rows] = await app.sql`
      select (select count(*)::int from users where username = ${second}) as second,
        (select count(*)::int from users where email_index = (select email_index from users where username = ${username})) as holders
    `
    t.same(rows, { second: 0, holders: 1 }, 'the address still has exactly one account')

    const name = uniqueName('race')
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        attemptRegister(app, i % 2 ? name : name.toUpperCase(), TEST_PASSWORD, {
          email: `${name}${i}@example.com`,
        }),
      ),
    )
    t.same(results.map((r) => r.statusCode).sort(), [201, 409, 409, 409, 409])
  },
)

t.test('unknown user and wrong password get identical answers', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const { username } = await register(app, uniqueName('user'))
  const wrong = await attemptLogin(app, username, 'Wr0ngPassword')
  const unknown = await attemptLogin(app, 'nobody_here', 'Wr0ngPassword')
  for (const res of [wrong, unknown]) {
    t.equal(res.statusCode, 401)
    t.equal(res.json<Problem>().detail, 'Invalid credentials.')
  }
  const strip = (r: typeof wrong) => {
    const { requestId: _r, ...body } = r.json<Problem>()
    const headers = Object.fromEntries(
      Object.entries(r.headers).filter(
        ([k]) => !['x-request-id', 'date'].includes(k) && !k.startsWith('ratelimit-'),
      ),
    )
    return { body, headers }
  }
  t.same(strip(wrong), strip(unknown), 'same body and headers')
  const events = await app.sql`
    select detail->>'reason' as reason from audit_events
    where event = 'auth.login.failure' and request_id in ${app.sql([String(wrong.headers['x-request-id']), String(unknown.headers['x-request-id'])])}
    order by created_at desc`
  t.same(
    events.map((e) => e.reason),
    ['unknown_user', 'bad_password'],
  )
})

t.test('a disabled account gets 403 only after a correct password', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const { username } = await register(app, uniqueName('user'))
  const session = await login(app, username)
  await app.sql`update users set disabled = true where username = ${username}`
  t.equal((await attemptLogin(app, username, 'Wr0ngPassword')).statusCode, 401)
  t.equal((await attemptLogin(app, username)).statusCode, 403)
  t.equal(
    (await app.inject({ url: '/api/users/me', headers: bearer(session.accessToken) })).statusCode,
    401,
    'live tokens stop working',
  )
  t.equal((await refreshWith(app, session.refreshToken)).statusCode, 401)
})

t.test('two parallel refreshes of one token (two tabs): one rotation, one grace answer', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const { username } = await register(app, uniqueName('user'))
  const session = await login(app, username)
  const results = await Promise.all([1, 2].map(() => refreshWith(app, session.refreshToken)))
  t.same(
    results.map((r) => r.statusCode),
    [200, 200],
    'no 401 and no 500',
  )
  const withCookie = results.filter((r) => r.cookies.some((c) => c.name === 'refresh_token'))
  t.equal(withCookie.length, 1, 'exactly one response carries a new refresh token')
  const winner = withCookie[0] ? (cookieValue(withCookie[0], 'refresh_token') as string) : ''
  t.equal((await refreshWith(app, winner)).statusCode, 200, "the winner's token keeps working")
})

t.test(
  'ten parallel refreshes of one token: one rotation, one grace answer, the rest are reuse',
  async (t) => {
    const app = await build(t, { env: { BCRYPT_COST: '4', DATABASE_POOL_MAX: '12' } })
    const { username } = await register(app, uniqueName('user'))
    const session = await login(app, username)
    const results = await Promise.all(
      Array.from({ length: 10 }, () => refreshWith(app, session.refreshToken)),
    )
    const codes = results.map((r) => r.statusCode)
    t.ok(
      codes.every((c) => c === 200 || c === 401),
      `no 500 (${codes})`,
    )
    const withCookie = results.filter(
      (r) => r.statusCode === 200 && r.cookies.some((c) => c.name === 'refresh_token'),
    )
    t.equal(withCookie.length, 1, 'exactly one response carries a new refresh token')
    t.ok(codes.filter((c) => c === 200).length <= 2, 'at most one grace answer besides it')
    const [live] = await app.sql`
    select count(*)::int as n from refresh_tokens t join sessions s on s.id = t.session_id
    join users u on u.id = s.user_id
    where u.username = ${username} and t.used_at is null and t.revoked_at is null and s.revoked_at is null`
    t.equal(live?.n, 0, 'a third presentation of one token is a replay: the family is revoked')
  },
)

t.test('replay after the grace window revokes the whole family', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4', REFRESH_REUSE_GRACE_SECONDS: '0' } })
  const { username, id: userId } = await register(app, uniqueName('user'))
  const session = await login(app, username)
  const first = await refreshWith(app, session.refreshToken)
  const child = cookieValue(first, 'refresh_token') as string
  await new Promise((r) => setTimeout(r, 20))
  const replay = await refreshWith(app, session.refreshToken)
  t.equal(replay.statusCode, 401)
  t.same(
    replay.cookies.map((c) => [c.name, c.maxAge]),
    [
      ['access_token', 0],
      ['refresh_token', 0],
    ],
    'both cookies cleared',
  )
  t.equal((await refreshWith(app, child)).statusCode, 401, 'the live child is revoked too')
  const firstAccess = first.json<Static<typeof TokenResponse>>().accessToken
  t.equal((await injectAs(app, firstAccess)('/api/users/me')).statusCode, 401)
  const events = await app.sql<{ userId: string }[]>`
    select user_id from audit_events where event = 'auth.refresh.reuse_detected' and user_id = ${userId}`
  t.equal(events.length, 1, "the reuse is audited for this user's session")
})

t.test('within the grace window only the immediate parent of the live token is tolerated', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const { username } = await register(app, uniqueName('user'))
  const s = await login(app, username)
  const r1 = await refreshWith(app, s.refreshToken)
  const t1 = cookieValue(r1, 'refresh_token') as string
  const r2 = await refreshWith(app, t1)
  t.equal(r2.statusCode, 200)
  const grace = await refreshWith(app, t1)
  t.equal(grace.statusCode, 200, 'immediate parent, inside the window')
  t.equal(grace.cookies.length, 1, 'no refresh cookie at all (only the access cookie)')
  t.equal(grace.cookies[0]?.name, 'access_token')
  const grandparent = await refreshWith(app, s.refreshToken)
  t.equal(grandparent.statusCode, 401, 'an older ancestor is a replay')
  const t2 = cookieValue(r2, 'refresh_token') as string
  t.equal((await refreshWith(app, t2)).statusCode, 401, 'and the family is gone')
})

t.test(
  'regression: the grace answer is given once per consumed token, audited; a second replay is reuse',
  async (t) => {
    const app = await build(t, { env: { BCRYPT_COST: '4' } })
    const user = await register(app, uniqueName('grace'))
    const s = await login(app, user.username)
    const r1 = await refreshWith(app, s.refreshToken)
    const t1 = cookieValue(r1, 'refresh_token') as string
    const r2 = await refreshWith(app, t1)
    t.equal(r2.statusCode, 200)
    t.equal((await refreshWith(app, t1)).statusCode, 200, 'the racing tab gets its access token')
    const again = await refreshWith(app, t1)
    t.equal(again.statusCode, 401, 'a second replay inside the window is reuse')
    const t2 = cookieValue(r2, 'refresh_token') as string
    t.equal((await refreshWith(app, t2)).statusCode, 401, 'and the family is gone')
    const events = await app.sql<{ event: string }[]>`
    select event from audit_events where user_id = ${user.id} and event like 'auth.refresh.%' order by created_at
  `
    t.same(
      events.map((e) => e.event),
      ['auth.refresh.grace_used', 'auth.refresh.reuse_detected'],
    )
  },
)

t.test('malformed and unknown refresh tokens are 401, never 500', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  for (const token of ['', 'x', "' or 1=1 --", 'a'.repeat(43), 'a'.repeat(5000)]) {
    const res = await refreshWith(app, token)
    t.equal(res.statusCode, 401, token.slice(0, 12))
    t.match(res.headers['content-type'], PROBLEM_TYPE)
  }
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/refresh' })).statusCode, 401, 'no cookie')
})

t.test('sessions: list, revoke own, 404 for another user’s, logout-all', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const alice = (await register(app, uniqueName('user'))).username
  const bob = (await register(app, uniqueName('user'))).username
  const a1 = await login(app, alice)
  const a2 = await login(app, alice)
  const b1 = await login(app, bob)
  const asA1 = injectAs(app, a1)
  const me = (session: { accessToken: string }) => injectAs(app, session)('/api/users/me')
  const list = await asA1({ url: '/api/auth/sessions', headers: { 'user-agent': 'tests' } })
  const items = list.json<Static<typeof SessionList>>().items

  await t.test('a user lists their own sessions, exactly one of them current', async (t) => {
    t.equal(list.statusCode, 200)
    t.equal(items.length, 2)
    t.equal(items.filter((i) => i.current).length, 1)
  })

  await t.test('another user’s session is 404 to revoke, and lives on', async (t) => {
    const bobSessions = (await injectAs(app, b1)('/api/auth/sessions')).json<Static<typeof SessionList>>()
      .items
    const bobsId = bobSessions[0]?.id
    const steal = await asA1({ method: 'DELETE', url: `/api/auth/sessions/${bobsId}` })
    t.equal(steal.statusCode, 404)
    t.equal((await me(b1)).statusCode, 200, "bob's session lives")
  })

  await t.test('a malformed session id is 400', async (t) => {
    const bad = await asA1({ method: 'DELETE', url: '/api/auth/sessions/not-a-uuid' })
    t.equal(bad.statusCode, 400)
  })

  await t.test('revoking one’s other session ends it', async (t) => {
    const other = items.find((i) => !i.current)?.id
    t.equal((await asA1({ method: 'DELETE', url: `/api/auth/sessions/${other}` })).statusCode, 204)
    t.equal((await me(a2)).statusCode, 401)
  })

  await t.test('logout-all ends every session, refresh token included, and needs a token', async (t) => {
    t.equal((await asA1({ method: 'POST', url: '/api/auth/logout-all' })).statusCode, 204)
    t.equal((await me(a1)).statusCode, 401)
    t.equal((await refreshWith(app, a1.refreshToken)).statusCode, 401)
    t.equal(
      (await app.inject({ method: 'POST', url: '/api/auth/logout-all' })).statusCode,
      401,
      'logout-all needs a token',
    )
  })
})

t.test('password change re-authenticates and ends every other session', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const { username } = await register(app, uniqueName('user'))
  const keep = await login(app, username)
  const other = await login(app, username)
  const change = (currentPassword: string, newPassword: string) =>
    app.inject({
      method: 'PUT',
      url: '/api/users/me/password',
      headers: bearer(keep.accessToken),
      payload: { currentPassword, newPassword },
    })
  const me = (session: { accessToken: string }) => injectAs(app, session)('/api/users/me')
  t.equal((await change('Wr0ngPassword', OTHER_PASSWORD)).statusCode, 403)
  t.equal((await change(TEST_PASSWORD, 'weak')).statusCode, 400)
  t.equal((await me(other)).statusCode, 200, 'failed changes end nothing')
  t.equal((await change(TEST_PASSWORD, OTHER_PASSWORD)).statusCode, 204)
  t.equal((await me(keep)).statusCode, 200, 'this session stays')
  t.equal((await me(other)).statusCode, 401)
  t.equal((await refreshWith(app, other.refreshToken)).statusCode, 401)
  t.equal((await attemptLogin(app, username)).statusCode, 401, 'old password no longer works')
  t.equal((await attemptLogin(app, username, OTHER_PASSWORD)).statusCode, 200)
})

t.test('role checks re-read the database: a demoted admin is refused at once', async (t) => {
  const app = await build(t, {
    env: { BCRYPT_COST: '4' },
    setup: (app) => {
      app.get('/test/admin-only', { onRequest: [app.authenticate, app.authorize('admin')] }, async () => ({
        ok: true,
      }))
    },
  })
  const { username } = await register(app, uniqueName('user'))
  await app.sql`update users set role = 'admin' where username = ${username}`
  const s = await login(app, username)
  t.equal((await injectAs(app, s)('/test/admin-only')).statusCode, 200)
  await app.sql`update users set role = 'user' where username = ${username}`
  const res = await injectAs(app, s)('/test/admin-only')
  t.equal(res.statusCode, 403, 'the token still says admin, the database does not')
  t.equal((await app.inject({ url: '/test/admin-only' })).statusCode, 401)
})

t.test('audit events are written for the security story, with no secrets', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const { username } = await register(app, uniqueName('user'))
  const s = await login(app, username)
  await refreshWith(app, s.refreshToken)
  await app.inject({ method: 'POST', url: '/api/auth/logout', headers: bearer(s.accessToken) })
  // The outbox worker's events (mail.sent…, for notices of other tests here) belong to no request.
  const rows = await app.sql`
    select event, user_id, ip, request_id, detail::text as detail from audit_events
    where event not in ('mail.sent', 'mail.retry_scheduled', 'mail.failed') order by created_at
  `
  const events = rows.map((r) => r.event)
  for (const e of ['auth.register', 'mail.queued', 'auth.login.success', 'auth.logout'])
    t.ok(events.includes(e), e)
  // The outbox worker sends the verification mail outside any request: its events have no request id.
  const requests = rows.filter((r) => !/^mail\.(sent|failed|retry_scheduled)$/.test(r.event))
  expectEvery(t, requests, (r) => Boolean(r.requestId), "each request's event carries its request id")
  const dump = JSON.stringify(rows)
  t.notOk(
    dump.includes(TEST_PASSWORD) || dump.includes(s.refreshToken) || dump.includes(s.accessToken),
    'no password or token stored',
  )
})
