import t from 'tap'
import { build, login, register } from './helper.js'

t.test('401s on authenticated routes are not rate limited', async (t) => {
  const app = await build(t, { env: { RATE_LIMIT_MAX: '3' } })
  const codes: number[] = []
  for (let i = 0; i < 10; i++) {
    const r = await app.inject({ method: 'GET', url: '/api/users/me' })
    codes.push(r.statusCode)
  }
  const adm: number[] = []
  for (let i = 0; i < 10; i++) {
    const r = await app.inject({ method: 'GET', url: '/api/admin/users', headers: { authorization: 'Bearer abc.def.ghi' } })
    adm.push(r.statusCode)
  }
  const other: number[] = []
  for (let i = 0; i < 6; i++) {
    const r = await app.inject({ method: 'GET', url: '/api/comments' })
    other.push(r.statusCode)
  }
  t.comment('users/me', codes.join(','), 'admin', adm.join(','), 'comments', other.join(','))
})

t.test('login throttle: username vs email keys', async (t) => {
  const app = await build(t, { env: { LOGIN_ACCOUNT_MAX_FAILURES: '3' } })
  await register(app, 'victim')
  const seq: string[] = []
  for (const u of ['victim', 'victim', 'victim', 'victim', 'victim@example.com', 'victim@example.com', 'victim@example.com', 'VICTIM@EXAMPLE.COM']) {
    const r = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: u, password: 'wrongwrong' } })
    seq.push(`${u}:${r.statusCode}`)
  }
  t.comment(seq.join(' '))
})

t.test('login throttle race', async (t) => {
  const app = await build(t, { env: { LOGIN_ACCOUNT_MAX_FAILURES: '3', LOGIN_RATE_LIMIT_MAX: '1000' } })
  await register(app, 'racer')
  const rs = await Promise.all(
    Array.from({ length: 30 }, () =>
      app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'racer', password: 'wrongwrong' } }),
    ),
  )
  const c: Record<number, number> = {}
  for (const r of rs) c[r.statusCode] = (c[r.statusCode] ?? 0) + 1
  t.comment('race', JSON.stringify(c))
})

t.test('admin since year 0 and HEAD/OPTIONS', async (t) => {
  const app = await build(t, { env: { CORS_ORIGINS: 'https://good.example' } })
  await register(app, 'adm1')
  await app.sql`update users set role='admin' where username='adm1'`
  const a = await login(app, 'adm1')
  await register(app, 'usr1')
  const u = await login(app, 'usr1')
  const H = { authorization: `Bearer ${a.accessToken}` }
  for (const s of ['0000-01-01T00:00:00Z', '2016-12-31T23:59:60Z', '0001-01-01T00:00:00+23:59', '9999-12-31T23:59:59-23:59', '2020-01-01t00:00:00z', '2020-01-01 00:00:00Z']) {
    const r = await app.inject({ method: 'GET', url: `/api/admin/audit-events?since=${encodeURIComponent(s)}`, headers: H })
    t.comment('since', s, r.statusCode, r.statusCode >= 400 ? r.body.slice(0, 200) : '')
  }
  for (const [m, url, h] of [
    ['HEAD', '/api/admin/users', {}],
    ['HEAD', '/api/admin/users', { authorization: `Bearer ${u.accessToken}` }],
    ['OPTIONS', '/api/admin/users', {}],
    ['OPTIONS', '/api/admin/users', { origin: 'https://good.example' }],
    ['OPTIONS', '/api/admin/users', { origin: 'https://good.example', 'access-control-request-method': 'GET' }],
    ['OPTIONS', '/api/admin/users', { origin: 'https://evil.example', 'access-control-request-method': 'GET' }],
    ['GET', '/api/ADMIN/users', {}],
    ['GET', '/api/admin/users/', { authorization: `Bearer ${u.accessToken}` }],
    ['GET', '/api/%61dmin/users', {}],
    ['GET', '/api/admin%2fusers', {}],
    ['GET', '/api/admin/users', { 'x-http-method-override': 'GET' }],
    ['POST', '/api/admin/users', { 'x-http-method-override': 'GET', authorization: `Bearer ${u.accessToken}` }],
    ['GET', '/api/admin/../admin/users', {}],
    ['GET', '/api/admin/./users', {}],
    ['GET', '/api/comments/../admin/users', {}],
    ['GET', '/api/admin;x/users', {}],
    ['GET', '/api/admin/users;x', {}],
  ] as const) {
    const r = await app.inject({ method: m as never, url, headers: h as never })
    t.comment(m, url, JSON.stringify(h).slice(0, 60), r.statusCode, JSON.stringify(r.headers).slice(0, 500))
  }
  // comments cursor on admin users
  for (let i = 0; i < 3; i++) await app.inject({ method: 'POST', url: '/api/comments', headers: H, payload: { body: `c${i}` } })
  const p = await app.inject({ method: 'GET', url: '/api/comments?limit=1' })
  const cur = p.json().nextCursor
  const r = await app.inject({ method: 'GET', url: `/api/admin/users?cursor=${cur}`, headers: H })
  t.comment('comment cursor on admin users', r.statusCode, r.body.slice(0, 300))
  const r2 = await app.inject({ method: 'GET', url: `/api/comments?cursor=${cur}.extra` })
  t.comment('cursor with extra part', r2.statusCode)
  t.comment('cursor decoded', Buffer.from(cur.split('.')[0], 'base64url').toString())
})
