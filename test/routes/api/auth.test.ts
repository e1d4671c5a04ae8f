import t from 'tap'
import { build } from '../../helper.js'

type App = Awaited<ReturnType<typeof build>>
const PASSWORD = 'Passw0rdX'
let seq = 0
const uniq = (p: string) => `${p}${process.pid % 1000}_${++seq}`

async function register(app: App, username = uniq('user'), password = PASSWORD) {
  const res = await app.inject({
    method: 'POST',
    url: '/api/auth/register',
    payload: { username, email: `${username}@Example.COM`, password },
  })
  return { res, username }
}

async function login(app: App, username: string, password = PASSWORD) {
  const res = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password } })
  const refresh = res.cookies.find((c) => c.name === 'refresh_token')?.value
  return { res, access: res.json().accessToken as string, refresh: refresh as string }
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const refreshWith = (app: App, token: string) =>
  app.inject({ method: 'POST', url: '/api/auth/refresh', cookies: { refresh_token: token } })

t.test('register → login → me → refresh → logout, with cookies', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const { res, username } = await register(app)
  t.equal(res.statusCode, 201)
  const { user } = res.json()
  t.same(
    Object.keys(user).sort(),
    ['createdAt', 'email', 'id', 'role', 'username'],
    'nothing but the public fields',
  )
  t.equal(user.email, `${username}@example.com`, 'email stored lower-case')
  t.equal(user.role, 'user')

  const session = await login(app, username.toUpperCase())
  t.equal(session.res.statusCode, 200, 'login is case-insensitive on the username')
  t.match(session.res.json(), { tokenType: 'Bearer', expiresIn: 900, user: { id: user.id } })
  t.equal(session.res.headers['cache-control'], 'no-store')
  const byEmail = await login(app, `${username}@EXAMPLE.com`)
  t.equal(byEmail.res.statusCode, 200, 'login by email')

  const me = await app.inject({ url: '/api/users/me', headers: bearer(session.access) })
  t.equal(me.statusCode, 200)
  t.same(me.json().user, user)
  const viaCookie = await app.inject({ url: '/api/users/me', cookies: { access_token: session.access } })
  t.equal(viaCookie.statusCode, 200, 'the access cookie authenticates too')
  const lower = await app.inject({
    url: '/api/users/me',
    headers: { authorization: `bearer ${session.access}` },
  })
  t.equal(lower.statusCode, 200, 'the auth scheme is case-insensitive (RFC 9110 §11.1)')

  const rotated = await refreshWith(app, session.refresh)
  t.equal(rotated.statusCode, 200)
  t.equal(rotated.headers['cache-control'], 'no-store')
  const next = rotated.cookies.find((c) => c.name === 'refresh_token')?.value
  t.ok(next && next !== session.refresh, 'a new refresh token is issued')
  t.equal(
    (await app.inject({ url: '/api/users/me', headers: bearer(rotated.json().accessToken) })).statusCode,
    200,
  )

  const out = await app.inject({
    method: 'POST',
    url: '/api/auth/logout',
    cookies: { refresh_token: next as string },
  })
  t.equal(out.statusCode, 204)
  t.same(
    out.cookies.map((c) => [c.name, c.maxAge]),
    [
      ['access_token', 0],
      ['refresh_token', 0],
    ],
  )
  t.equal((await refreshWith(app, next as string)).statusCode, 401, 'the logged-out refresh token is dead')
  t.equal((await app.inject({ url: '/api/users/me', headers: bearer(session.access) })).statusCode, 401)
  const again = await app.inject({ method: 'POST', url: '/api/auth/logout' })
  t.equal(again.statusCode, 204, 'logout without a session is still 204')
})

t.test('registration validation names each failing rule', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ username: 'ab', email: 'a@b.io', password: PASSWORD }, 'body.username', /3–32/],
    [{ username: 'bad name!', email: 'a@b.io', password: PASSWORD }, 'body.username', /letters, digits/],
    [{ username: 'a'.repeat(33), email: 'a@b.io', password: PASSWORD }, 'body.username', /3–32/],
    [{ username: 'okname', email: 'not-an-email', password: PASSWORD }, 'body.email', /valid email/],
    [
      { username: 'okname', email: `${'a'.repeat(250)}@b.io`, password: PASSWORD },
      'body.email',
      /valid email/,
    ],
    [{ username: 'okname', email: 'a@b.io', password: 'Sh0rt' }, 'body.password', /at least 8/],
    [{ username: 'okname', email: 'a@b.io', password: 'NoDigitsHere' }, 'body.password', /digit/],
    [{ username: 'okname', email: 'a@b.io', password: 'n0uppercase' }, 'body.password', /upper-case/],
    [
      { username: 'okname', email: 'a@b.io', password: PASSWORD, role: 'admin' },
      'body.role',
      /not an allowed/,
    ],
  ]
  for (const [payload, path, message] of cases) {
    const res = await app.inject({ method: 'POST', url: '/api/auth/register', payload })
    t.equal(res.statusCode, 400, path)
    const err = res.json().errors.find((e: { path: string }) => e.path === path)
    t.match(err?.message, message, `${path}: ${err?.message}`)
  }
  const weak = await app.inject({
    method: 'POST',
    url: '/api/auth/register',
    payload: { username: 'okname', email: 'a@b.io', password: 'abc' },
  })
  t.same(
    weak
      .json()
      .errors.map((e: { message: string }) => e.message)
      .sort(),
    ['must be at least 8 characters', 'must contain a digit', 'must contain an upper-case letter'],
    'all three password rules at once',
  )
  const [count] = await app.sql`select count(*)::int as n from users where username = 'okname'`
  t.equal(count?.n, 0, 'no row was written')
})

t.test('72-byte bcrypt limit is counted in UTF-8 bytes', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const exactly72 = `P1${'é'.repeat(35)}` // 2 + 70 bytes
  const over72 = `P1${'é'.repeat(35)}x` // 73 bytes, 38 characters
  t.equal(Buffer.byteLength(exactly72), 72)
  const ok = await register(app, uniq('bytes'), exactly72)
  t.equal(ok.res.statusCode, 201)
  t.equal((await login(app, ok.username, exactly72)).res.statusCode, 200)
  const tooLong = await register(app, uniq('bytes'), over72)
  t.equal(tooLong.res.statusCode, 400)
  t.match(tooLong.res.json().errors, [{ path: 'body.password', message: /72 bytes/ }])
  // bcrypt would accept a longer password whose first 72 bytes match; we must not.
  t.equal((await login(app, ok.username, `${exactly72}extra`)).res.statusCode, 401)
})

t.test(
  'duplicates: case-variant usernames and emails are 409; concurrent registration gives one 201',
  async (t) => {
    const app = await build(t, { env: { BCRYPT_COST: '4' } })
    const { username } = await register(app)
    const upper = await app.inject({
      method: 'POST',
      url: '/api/auth/register',
      payload: { username: username.toUpperCase(), email: 'other@example.com', password: PASSWORD },
    })
    t.equal(upper.statusCode, 409)
    t.match(upper.json(), { type: 'urn:bulwark:problem:conflict', errors: [{ path: 'body.username' }] })
    const sameEmail = await app.inject({
      method: 'POST',
      url: '/api/auth/register',
      payload: { username: uniq('x'), email: `${username}@example.com`.toUpperCase(), password: PASSWORD },
    })
    t.equal(sameEmail.statusCode, 409)
    t.match(sameEmail.json(), { errors: [{ path: 'body.email' }] })

    const name = uniq('race')
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        app.inject({
          method: 'POST',
          url: '/api/auth/register',
          payload: {
            username: i % 2 ? name : name.toUpperCase(),
            email: `${name}${i}@example.com`,
            password: PASSWORD,
          },
        }),
      ),
    )
    t.same(results.map((r) => r.statusCode).sort(), [201, 409, 409, 409, 409])
  },
)

t.test('unknown user and wrong password get identical answers', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const { username } = await register(app)
  const wrong = await login(app, username, 'Wr0ngPassword')
  const unknown = await login(app, 'nobody_here', 'Wr0ngPassword')
  for (const res of [wrong.res, unknown.res]) {
    t.equal(res.statusCode, 401)
    t.equal(res.json().detail, 'Invalid credentials.')
  }
  const strip = (r: typeof wrong.res) => {
    const { requestId: _r, ...body } = r.json()
    const headers = Object.fromEntries(
      Object.entries(r.headers).filter(
        ([k]) => !['x-request-id', 'date'].includes(k) && !k.startsWith('ratelimit-'),
      ),
    )
    return { body, headers }
  }
  t.same(strip(wrong.res), strip(unknown.res), 'same body and headers')
  const events = await app.sql`
    select detail->>'reason' as reason from audit_events where event = 'auth.login.failure'
    order by created_at desc limit 2`
  t.same(
    events.map((e) => e.reason),
    ['unknown_user', 'bad_password'],
  )
})

t.test('a disabled account gets 403 only after a correct password', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const { username } = await register(app)
  const session = await login(app, username)
  await app.sql`update users set disabled = true where username = ${username}`
  t.equal((await login(app, username, 'Wr0ngPassword')).res.statusCode, 401)
  t.equal((await login(app, username)).res.statusCode, 403)
  t.equal(
    (await app.inject({ url: '/api/users/me', headers: bearer(session.access) })).statusCode,
    401,
    'live tokens stop working',
  )
  t.equal((await refreshWith(app, session.refresh)).statusCode, 401)
})

t.test('ten parallel refreshes of one token: one rotation, the rest get access tokens only', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4', DATABASE_POOL_MAX: '12' } })
  const { username } = await register(app)
  const session = await login(app, username)
  const results = await Promise.all(Array.from({ length: 10 }, () => refreshWith(app, session.refresh)))
  t.same(
    results.map((r) => r.statusCode),
    Array(10).fill(200),
    'no 401 and no 500',
  )
  const withCookie = results.filter((r) => r.cookies.some((c) => c.name === 'refresh_token'))
  t.equal(withCookie.length, 1, 'exactly one response carries a new refresh token')
  const [live] = await app.sql`
    select count(*)::int as n from refresh_tokens t join sessions s on s.id = t.session_id
    join users u on u.id = s.user_id
    where u.username = ${username} and t.used_at is null and t.revoked_at is null and s.revoked_at is null`
  t.equal(live?.n, 1, 'exactly one live token afterwards, family not revoked')
  const winner = withCookie[0]?.cookies.find((c) => c.name === 'refresh_token')?.value as string
  t.equal((await refreshWith(app, winner)).statusCode, 200, "the winner's token keeps working")
})

t.test('replay after the grace window revokes the whole family', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4', REFRESH_REUSE_GRACE_SECONDS: '0' } })
  const { username } = await register(app)
  const session = await login(app, username)
  const first = await refreshWith(app, session.refresh)
  const child = first.cookies.find((c) => c.name === 'refresh_token')?.value as string
  await new Promise((r) => setTimeout(r, 20))
  const replay = await refreshWith(app, session.refresh)
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
  t.equal(
    (await app.inject({ url: '/api/users/me', headers: bearer(first.json().accessToken) })).statusCode,
    401,
  )
  const [event] =
    await app.sql`select user_id, detail from audit_events where event = 'auth.refresh.reuse_detected'`
  t.ok(event, 'audit event written')
})

t.test('within the grace window only the immediate parent of the live token is tolerated', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const { username } = await register(app)
  const s = await login(app, username)
  const r1 = await refreshWith(app, s.refresh)
  const t1 = r1.cookies.find((c) => c.name === 'refresh_token')?.value as string
  const r2 = await refreshWith(app, t1)
  t.equal(r2.statusCode, 200)
  const grace = await refreshWith(app, t1)
  t.equal(grace.statusCode, 200, 'immediate parent, inside the window')
  t.equal(grace.cookies.length, 1, 'no refresh cookie at all (only the access cookie)')
  t.equal(grace.cookies[0]?.name, 'access_token')
  const grandparent = await refreshWith(app, s.refresh)
  t.equal(grandparent.statusCode, 401, 'an older ancestor is a replay')
  const t2 = r2.cookies.find((c) => c.name === 'refresh_token')?.value as string
  t.equal((await refreshWith(app, t2)).statusCode, 401, 'and the family is gone')
})

t.test('malformed and unknown refresh tokens are 401, never 500', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  for (const token of ['', 'x', "' or 1=1 --", 'a'.repeat(43), 'a'.repeat(5000)]) {
    const res = await refreshWith(app, token)
    t.equal(res.statusCode, 401, token.slice(0, 12))
    t.match(res.headers['content-type'], /problem\+json/)
  }
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/refresh' })).statusCode, 401, 'no cookie')
})

t.test('sessions: list, revoke own, 404 for another user’s, logout-all', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const alice = (await register(app)).username
  const bob = (await register(app)).username
  const a1 = await login(app, alice)
  const a2 = await login(app, alice)
  const b1 = await login(app, bob)
  const list = await app.inject({
    url: '/api/auth/sessions',
    headers: { ...bearer(a1.access), 'user-agent': 'tests' },
  })
  t.equal(list.statusCode, 200)
  const items = list.json().items
  t.equal(items.length, 2)
  t.equal(items.filter((i: { current: boolean }) => i.current).length, 1)
  const bobSessions = (await app.inject({ url: '/api/auth/sessions', headers: bearer(b1.access) })).json()
    .items
  const bobsId = bobSessions[0].id
  const steal = await app.inject({
    method: 'DELETE',
    url: `/api/auth/sessions/${bobsId}`,
    headers: bearer(a1.access),
  })
  t.equal(steal.statusCode, 404)
  t.equal(
    (await app.inject({ url: '/api/users/me', headers: bearer(b1.access) })).statusCode,
    200,
    "bob's session lives",
  )
  const bad = await app.inject({
    method: 'DELETE',
    url: '/api/auth/sessions/not-a-uuid',
    headers: bearer(a1.access),
  })
  t.equal(bad.statusCode, 400)
  const other = items.find((i: { current: boolean }) => !i.current).id
  t.equal(
    (await app.inject({ method: 'DELETE', url: `/api/auth/sessions/${other}`, headers: bearer(a1.access) }))
      .statusCode,
    204,
  )
  t.equal((await app.inject({ url: '/api/users/me', headers: bearer(a2.access) })).statusCode, 401)
  t.equal(
    (await app.inject({ method: 'POST', url: '/api/auth/logout-all', headers: bearer(a1.access) }))
      .statusCode,
    204,
  )
  t.equal((await app.inject({ url: '/api/users/me', headers: bearer(a1.access) })).statusCode, 401)
  t.equal((await refreshWith(app, a1.refresh)).statusCode, 401)
  t.equal(
    (await app.inject({ method: 'POST', url: '/api/auth/logout-all' })).statusCode,
    401,
    'logout-all needs a token',
  )
})

t.test('password change re-authenticates and ends every other session', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const { username } = await register(app)
  const keep = await login(app, username)
  const other = await login(app, username)
  const change = (currentPassword: string, newPassword: string) =>
    app.inject({
      method: 'PUT',
      url: '/api/users/me/password',
      headers: bearer(keep.access),
      payload: { currentPassword, newPassword },
    })
  t.equal((await change('Wr0ngPassword', 'N3wPassword')).statusCode, 403)
  t.equal((await change(PASSWORD, 'weak')).statusCode, 400)
  t.equal(
    (await app.inject({ url: '/api/users/me', headers: bearer(other.access) })).statusCode,
    200,
    'failed changes end nothing',
  )
  t.equal((await change(PASSWORD, 'N3wPassword')).statusCode, 204)
  t.equal(
    (await app.inject({ url: '/api/users/me', headers: bearer(keep.access) })).statusCode,
    200,
    'this session stays',
  )
  t.equal((await app.inject({ url: '/api/users/me', headers: bearer(other.access) })).statusCode, 401)
  t.equal((await refreshWith(app, other.refresh)).statusCode, 401)
  t.equal((await login(app, username)).res.statusCode, 401, 'old password no longer works')
  t.equal((await login(app, username, 'N3wPassword')).res.statusCode, 200)
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
  const { username } = await register(app)
  await app.sql`update users set role = 'admin' where username = ${username}`
  const s = await login(app, username)
  t.equal((await app.inject({ url: '/test/admin-only', headers: bearer(s.access) })).statusCode, 200)
  await app.sql`update users set role = 'user' where username = ${username}`
  const res = await app.inject({ url: '/test/admin-only', headers: bearer(s.access) })
  t.equal(res.statusCode, 403, 'the token still says admin, the database does not')
  t.equal((await app.inject({ url: '/test/admin-only' })).statusCode, 401)
})

t.test('audit events are written for the security story, with no secrets', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const { username } = await register(app)
  const s = await login(app, username)
  await refreshWith(app, s.refresh)
  await app.inject({ method: 'POST', url: '/api/auth/logout', headers: bearer(s.access) })
  const rows =
    await app.sql`select event, user_id, ip, request_id, detail::text as detail from audit_events order by created_at`
  const events = rows.map((r) => r.event)
  for (const e of ['auth.register', 'auth.login.success', 'auth.logout']) t.ok(events.includes(e), e)
  t.ok(
    rows.every((r) => r.requestId),
    'each carries its request id',
  )
  const dump = JSON.stringify(rows)
  t.notOk(
    dump.includes(PASSWORD) || dump.includes(s.refresh) || dump.includes(s.access),
    'no password or token stored',
  )
})
