import type { Static } from '@sinclair/typebox'
import t from 'tap'
import type { App } from '../../../app.js'
import type { AdminUser, AdminUserPage, AuditPage } from '../../../schemas/admin.js'
import type { CommentPage } from '../../../schemas/comments.js'
import type { Profile } from '../../../schemas/users.js'
import {
  attemptLogin,
  bearer,
  build,
  expectEvery,
  expectProblem,
  type InjectResponse,
  login,
  signUp,
  uniqueName,
  waitForLockWaiter,
} from '../../helper.js'

type UserPage = Static<typeof AdminUserPage>
type EventPage = Static<typeof AuditPage>

/** A signed-in user; an admin is promoted in the database before signing in. */
const account = (app: App, role: 'user' | 'admin' = 'user', username = uniqueName(role)) =>
  signUp(app, role, { role, username })

t.test('admin routes: 401 without a token, 403 for users, whatever the spelling or method', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const user = await account(app)
  const admin = await account(app, 'admin')
  const spellings = [
    ['GET', '/api/admin/users'],
    ['GET', '/api/admin/users/'],
    ['GET', '/API/ADMIN/users'],
    ['GET', '/api//admin/users'],
    ['GET', '//api/admin/users'],
    ['GET', '/api/%61dmin/users'],
    ['GET', '/api/admin/audit-events?limit=5'],
    ['GET', '/api/admin'],
    ['GET', '/api/admin/nothing-here'],
    ['DELETE', '/api/admin/users'],
    ['PUT', '/api/admin/users'],
    ['PATCH', `/api/admin/users/${user.id}`],
    ['POST', '/api/admin/users'],
    ['OPTIONS', '/api/admin/users'],
    ['OPTIONS', '/api/admin/nothing-here'],
  ] as const
  for (const [method, url] of spellings) {
    const override = { 'x-http-method-override': 'GET', 'content-type': 'application/json' }
    const payload =
      method === 'GET' || method === 'DELETE' || method === 'OPTIONS' ? undefined : { role: 'admin' }
    const anon = await app.inject({ method, url, headers: override, ...(payload ? { payload } : {}) })
    t.equal(anon.statusCode, 401, `anonymous ${method} ${url}`)
    t.match(anon.headers['www-authenticate'], /^Bearer/)
    const asUser = await user.inject({ method, url, headers: override, ...(payload ? { payload } : {}) })
    t.equal(asUser.statusCode, 403, `user ${method} ${url}`)
  }
  const [row] = await app.sql`select role from users where id = ${user.id}`
  t.equal(row?.role, 'user', 'no attempt changed anything')
  t.equal((await admin.inject('/api/admin/users')).statusCode, 200)
  // An admin's plain OPTIONS is a method the admin API does not have: a 404 problem like any other.
  const adminOptions = await admin.inject({ method: 'OPTIONS', url: '/api/admin/users' })
  expectProblem(t, adminOptions, 404)
})

t.test('GET /api/admin/users lists with filters and keyset pagination', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const admin = await account(app, 'admin')
  const prefix = uniqueName('zeta')
  const made = []
  for (let i = 0; i < 5; i++) made.push(await account(app, 'user', `${prefix}_${i}`))
  await app.sql`update users set disabled = true where id = ${made[0]?.id ?? ''}`
  const list = (query: string) => admin.inject(`/api/admin/users?${query}`)
  const items = async (query: string) => (await list(query)).json<UserPage>().items

  await t.test('filters: q is a case-insensitive literal prefix; disabled and role narrow it', async (t) => {
    const all = await list(`q=${prefix}&limit=100`)
    t.equal(all.statusCode, 200)
    const users = all.json<UserPage>().items
    t.equal(users.length, 5)
    t.same(Object.keys(users[0] ?? {}).sort(), [
      'createdAt',
      'disabled',
      'email',
      'emailVerified',
      'id',
      'role',
      'username',
    ])
    t.equal((await items(`q=${prefix.toUpperCase()}`)).length, 5, 'prefix match ignores case')
    t.equal((await items(`q=${prefix}&disabled=true`)).length, 1)
    t.equal((await items(`q=${prefix}&disabled=false`)).length, 4)
    expectEvery(t, await items('role=admin'), (u) => u.role === 'admin', 'only admins')
    t.equal((await items(`q=${prefix.slice(0, 3)}%25`)).length, 0, 'a % in q is a literal, not a wildcard')
    t.equal((await items("q=' OR '1'='1")).length, 0, 'SQL metacharacters are just text')
  })

  await t.test('keyset pagination visits every match once', async (t) => {
    const seen: string[] = []
    let cursor: string | null = null
    do {
      const res = await list(`q=${prefix}&limit=2${cursor ? `&cursor=${cursor}` : ''}`)
      t.equal(res.statusCode, 200)
      const page = res.json<UserPage>()
      seen.push(...page.items.map((u) => u.id))
      cursor = page.nextCursor
    } while (cursor)
    t.equal(seen.length, 5)
    t.equal(new Set(seen).size, 5, 'no duplicates across pages')
  })

  await t.test('malformed queries are 400', async (t) => {
    for (const bad of [
      'limit=0',
      'limit=1e9',
      'limit=-1',
      'limit=abc',
      'role=root',
      'disabled=maybe',
      'extra=1',
      'cursor=forged',
    ]) {
      t.equal((await list(bad)).statusCode, 400, bad)
    }
  })
})

t.test(
  'PATCH /api/admin/users/:id changes role and status, revokes sessions, writes audit events',
  async (t) => {
    const app = await build(t, { env: { BCRYPT_COST: '4' } })
    const admin = await account(app, 'admin')
    const target = await account(app)
    const patch = (id: string, payload: unknown) =>
      admin.inject({ method: 'PATCH', url: `/api/admin/users/${id}`, payload: payload as object })
    let targetToken = ''

    await t.test(
      'a promotion ends the user’s sessions; the new rights hold at the next sign-in',
      async (t) => {
        const promoted = await patch(target.id, { role: 'admin' })
        t.equal(promoted.statusCode, 200)
        t.match(promoted.json<Static<typeof AdminUser>>(), { id: target.id, role: 'admin', disabled: false })
        t.equal((await target.inject('/api/users/me')).statusCode, 401, 'the changed user must sign in again')
        targetToken = (await login(app, target.username)).accessToken
        t.equal(
          (await app.inject({ url: '/api/admin/users', headers: bearer(targetToken) })).statusCode,
          200,
          'new admin rights on the next request',
        )
      },
    )

    await t.test('disabling refuses the user at once and at login; re-enabling works', async (t) => {
      t.equal((await patch(target.id, { disabled: true })).json<Static<typeof AdminUser>>().disabled, true)
      t.equal(
        (await app.inject({ url: '/api/users/me', headers: bearer(targetToken) })).statusCode,
        401,
        'disabled: refused at once',
      )
      t.equal((await attemptLogin(app, target.username)).statusCode, 403)
      t.equal((await patch(target.id, { disabled: false, role: 'user' })).statusCode, 200)
    })

    await t.test('every change is audited with the acting admin', async (t) => {
      const events = await app.sql`
      select event, user_id, detail from audit_events
      where event like 'admin.user.%' and detail->>'targetUserId' = ${target.id} order by created_at, event`
      t.same(events.map((e) => e.event).sort(), [
        'admin.user.disabled',
        'admin.user.enabled',
        'admin.user.role_changed',
        'admin.user.role_changed',
      ])
      expectEvery(t, events, (e) => e.userId === admin.id, 'the acting admin is recorded')
    })

    await t.test(
      'empty, unknown-valued or extra fields, and unknown or malformed ids, are refused',
      async (t) => {
        t.equal((await patch(target.id, {})).statusCode, 400, 'an empty patch is refused')
        t.equal((await patch(target.id, { role: 'root' })).statusCode, 400)
        t.equal((await patch(target.id, { email: 'x@y.z' })).statusCode, 400, 'no mass assignment')
        t.equal((await patch('00000000-0000-4000-8000-000000000000', { role: 'user' })).statusCode, 404)
        t.equal((await patch('not-a-uuid', { role: 'user' })).statusCode, 400)
      },
    )
  },
)

t.test('the last enabled admin cannot be demoted or disabled, even concurrently', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const a = await account(app, 'admin')
  const b = await account(app, 'admin')
  // A warm pool, so both requests truly reach the database together (a cold one serializes them).
  await Promise.all(Array.from({ length: 10 }, () => app.sql`select pg_sleep(0.01)`))
  const outcomes = new Set<string>()
  for (let round = 0; round < 15; round++) {
    await app.sql`update users set role = 'user' where role = 'admin'`
    await app.sql`update users set role = 'admin', disabled = false where id in ${app.sql([a.id, b.id])}`
    const results = await Promise.all([
      b.inject({ method: 'PATCH', url: `/api/admin/users/${a.id}`, payload: { role: 'user' } }),
      a.inject({ method: 'PATCH', url: `/api/admin/users/${b.id}`, payload: { disabled: true } }),
    ])
    const codes = results.map((r) => r.statusCode).sort()
    outcomes.add(JSON.stringify(codes))
    t.ok(codes[0] === 200 && codes[1] !== 200, `one succeeds, the other is refused (${codes})`)
    const [left] = await app.sql`select count(*)::int as n from users where role = 'admin' and not disabled`
    t.equal(left?.n, 1, `round ${round}: exactly one enabled admin remains`)
  }
  t.comment(`outcomes: ${[...outcomes].join(' ')}`)
  const survivor = (await app.sql`select id from users where role = 'admin' and not disabled`)[0]?.id
  const [self] = await app.sql`select username from users where id = ${survivor}`
  const { accessToken } = await login(app, self?.username)
  const res = await app.inject({
    method: 'PATCH',
    url: `/api/admin/users/${survivor}`,
    headers: bearer(accessToken),
    payload: { role: 'user' },
  })
  expectProblem(t, res, 409, 'urn:bulwark:problem:last-admin')
})

t.test('regression: an admin demoted while their request is in flight changes nothing', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const a = await account(app, 'admin')
  const b = await account(app, 'admin')
  const c = await account(app)
  let pending: Promise<InjectResponse> | undefined
  await app.sql.begin(async (tx) => {
    // A holds B's row, as A's demotion of B would, while B's change of C is on its way.
    await tx`select 1 from users where id = ${b.id} for update`
    pending = b.inject({ method: 'PATCH', url: `/api/admin/users/${c.id}`, payload: { role: 'admin' } })
    await waitForLockWaiter(app)
    await tx`update users set role = 'user' where id = ${b.id}`
    await tx`insert into audit_events (event, user_id) values ('admin.user.role_changed', ${a.id})`
  })
  const res = await (pending as Promise<InjectResponse>)
  expectProblem(
    t,
    res,
    403,
    'urn:bulwark:problem:forbidden',
    'refused: B is no longer an admin when it commits',
  )
  const [row] = await app.sql<{ role: string }[]>`select role from users where id = ${c.id}`
  t.equal(row?.role, 'user', 'C is unchanged')
})

t.test('GET /api/admin/audit-events filters by event, user and time', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const admin = await account(app, 'admin')
  const user = await account(app)
  const since = new Date(Date.now() - 60_000).toISOString()
  const get = (q: string) => admin.inject(`/api/admin/audit-events?${q}`)
  const byUser = await get(`userId=${user.id}&limit=100`)
  t.equal(byUser.statusCode, 200)
  const userEvents = byUser.json<EventPage>().items
  t.ok(userEvents.length >= 2)
  expectEvery(t, userEvents, (e) => e.userId === user.id, "only the user's events")
  t.same(Object.keys(userEvents[0] ?? {}).sort(), [
    'createdAt',
    'detail',
    'event',
    'id',
    'ip',
    'requestId',
    'userAgent',
    'userId',
  ])
  const logins = await get('event=auth.login.success')
  const loginEvents = logins.json<EventPage>().items
  t.ok(loginEvents.length >= 2)
  expectEvery(t, loginEvents, (e) => e.event === 'auth.login.success', 'only sign-ins')
  t.ok((await get(`since=${encodeURIComponent(since)}`)).json<EventPage>().items.length >= 4)
  const later = encodeURIComponent(new Date(Date.now() + 60_000).toISOString())
  t.equal((await get(`since=${later}`)).json<EventPage>().items.length, 0)
  const first = (await get('limit=1')).json<EventPage>()
  const second = (await get(`limit=1&cursor=${first.nextCursor}`)).json<EventPage>()
  t.not(first.items[0]?.id, second.items[0]?.id, 'pages do not repeat')
  for (const bad of ['userId=nope', 'since=yesterday', 'event=DROP%20TABLE', 'limit=101']) {
    t.equal((await get(bad)).statusCode, 400, bad)
  }
})

t.test('GET /api/users/:username shows email only to the user themself or an admin', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const alice = await account(app)
  const bob = await account(app)
  const admin = await account(app, 'admin')
  const profile = (name: string, token?: string) =>
    app.inject({ url: `/api/users/${name}`, headers: token ? bearer(token) : {} })
  const byBob = await profile(alice.username, bob.accessToken)
  t.equal(byBob.statusCode, 200)
  t.same(Object.keys(byBob.json()).sort(), ['createdAt', 'id', 'role', 'username'], 'no email for others')
  const email = async (name: string, token: string) =>
    (await profile(name, token)).json<Static<typeof Profile>>().email
  t.equal(await email(alice.username, alice.accessToken), `${alice.username}@example.com`)
  t.equal(await email(alice.username.toUpperCase(), admin.accessToken), `${alice.username}@example.com`)
  t.equal((await profile('nobody_at_all', bob.accessToken)).statusCode, 404)
  t.equal((await profile(alice.username)).statusCode, 401)
  for (const bad of ["x' or '1'='1", 'a', 'a'.repeat(33), '%00']) {
    t.equal((await profile(encodeURIComponent(bad), bob.accessToken)).statusCode, 400, bad)
  }
})

t.test('regression: cursors are bound to their list; out-of-range dates are 400', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const admin = await account(app, 'admin')
  for (let i = 0; i < 2; i++) {
    await admin.inject({ method: 'POST', url: '/api/comments', payload: { body: `c${i}` } })
  }
  const cursor = (await app.inject({ url: '/api/comments?limit=1' })).json<Static<typeof CommentPage>>()
    .nextCursor as string
  t.equal(
    (await app.inject({ url: `/api/comments?limit=1&cursor=${cursor}` })).statusCode,
    200,
    'valid where it was issued',
  )
  const reused = await admin.inject(`/api/admin/users?cursor=${cursor}`)
  t.equal(reused.statusCode, 400, 'a comments cursor is refused by the users list')
  t.equal(
    (await app.inject({ url: `/api/comments?cursor=${cursor}.extra` })).statusCode,
    400,
    'extra parts are refused',
  )
  for (const since of ['0000-01-01T00:00:00Z', '0001-01-01T00:00:00+23:59', '9999-12-31T23:59:59-23:59']) {
    const res = await admin.inject(`/api/admin/audit-events?since=${encodeURIComponent(since)}`)
    t.equal(res.statusCode, 400, since)
  }
})
