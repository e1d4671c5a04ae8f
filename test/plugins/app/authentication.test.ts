import t from 'tap'
import { build, login, register } from '../../helper.js'

t.test(
  'logout with a valid access token while the database is down answers 503, not a fake 204',
  async (t) => {
    const app = await build(t)
    await register(app, 'outage-logout')
    const { accessToken } = await login(app, 'outage-logout')
    await app.sql.end() // the database goes away: the session cannot be looked up or revoked
    const res = await app.inject({
      method: 'POST',
      url: '/api/auth/logout',
      headers: { authorization: `Bearer ${accessToken}` },
    })
    t.equal(res.statusCode, 503, 'the session was not ended, so logout must not claim it was')
    t.equal(res.headers['retry-after'], '5')
    t.notOk(res.headers['set-cookie'], 'cookies stay, so the client can retry the logout')
  },
)

t.test('logout with a bad access token still ends the session named by the refresh cookie', async (t) => {
  const app = await build(t)
  await register(app, 'bad-token-logout')
  const { cookies, accessToken } = await login(app, 'bad-token-logout')
  const res = await app.inject({
    method: 'POST',
    url: '/api/auth/logout',
    headers: { authorization: 'Bearer not.a.token' },
    cookies: { refresh_token: cookies.refresh_token ?? '' },
  })
  t.equal(res.statusCode, 204)
  const me = await app.inject({ url: '/api/users/me', headers: { authorization: `Bearer ${accessToken}` } })
  t.equal(me.statusCode, 401, 'the session behind the refresh cookie is over')
})
