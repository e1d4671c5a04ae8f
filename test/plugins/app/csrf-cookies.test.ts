import type { Static } from '@sinclair/typebox'
import t, { type Test } from 'tap'
import type { App } from '../../../app.js'
import type { LoginResponse, TokenResponse } from '../../../schemas/auth.js'
import {
  bearer,
  build,
  expectProblem,
  type InjectResponse,
  injectAs,
  login,
  OTHER_PASSWORD,
  register,
  TEST_PASSWORD,
} from '../../helper.js'

/** CSRF defences (Origin / Fetch Metadata, JSON-only bodies) and the auth cookies' attributes. */

type Res = InjectResponse

const OWN_ORIGIN = 'http://localhost:80'
const ALLOWED = 'https://app.example.com'

const me = (app: App, token: string) => injectAs(app, token)('/api/users/me')

function assertCsrfRejected(t: Test, res: Res) {
  expectProblem(t, res, 403, 'urn:bulwark:problem:csrf-rejected', 'CSRF rejected')
  t.equal(res.headers['set-cookie'], undefined, 'no cookie is set or cleared')
}

interface SetCookie {
  name: string
  value: string
  attrs: Record<string, string | true>
}

/** The raw Set-Cookie headers, with attribute names lower-cased. */
function setCookies(res: Res): SetCookie[] {
  const raw = res.headers['set-cookie']
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]
  return list.map((line) => {
    const [pair = '', ...rest] = line.split(';').map((s) => s.trim())
    const eq = pair.indexOf('=')
    const attrs: Record<string, string | true> = {}
    for (const attr of rest) {
      const i = attr.indexOf('=')
      if (i === -1) attrs[attr.toLowerCase()] = true
      else attrs[attr.slice(0, i).toLowerCase()] = attr.slice(i + 1)
    }
    return { name: pair.slice(0, eq), value: pair.slice(eq + 1), attrs }
  })
}

function cookieNamed(t: Test, res: Res, name: string): SetCookie {
  const found = setCookies(res).filter((c) => c.name === name)
  t.equal(found.length, 1, `exactly one Set-Cookie for ${name}`)
  return found[0] ?? { name, value: '', attrs: {} }
}

t.test('cross-site cookie-borne requests are refused', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4', CORS_ORIGINS: ALLOWED } })
  await register(app, 'carol')

  await t.test('foreign origins, null, cross-site fetch metadata and look-alikes on logout', async (t) => {
    const { accessToken, cookies } = await login(app, 'carol')
    const cases: [string, Record<string, string>][] = [
      ['evil origin', { origin: 'https://evil.example' }],
      ['null origin', { origin: 'null' }],
      ['sec-fetch-site cross-site', { 'sec-fetch-site': 'cross-site' }],
      ['cross-site even with our own origin', { origin: OWN_ORIGIN, 'sec-fetch-site': 'cross-site' }],
      ['suffix look-alike', { origin: 'https://app.example.com.evil.io' }],
      ['other scheme', { origin: 'http://app.example.com' }],
      ['other port', { origin: 'https://app.example.com:8443' }],
      ['own host, other scheme', { origin: 'https://localhost:80' }],
      ['trailing slash', { origin: `${ALLOWED}/` }],
    ]
    for (const [name, headers] of cases) {
      await t.test(name, async (t) => {
        assertCsrfRejected(t, await app.inject({ method: 'POST', url: '/api/auth/logout', cookies, headers }))
        const alive = await me(app, accessToken)
        t.equal(alive.statusCode, 200, 'the session is still alive')
      })
    }
    // Each cookie on its own also triggers the check (and the loop must have cookies to loop over).
    t.same(
      Object.keys(cookies).sort(),
      ['access_token', 'device', 'refresh_token'],
      'sign-in set the cookies',
    )
    for (const name of Object.keys(cookies)) {
      await t.test(`only the ${name} cookie`, async (t) => {
        const res = await app.inject({
          method: 'POST',
          url: '/api/auth/logout',
          cookies: { [name]: cookies[name] ?? '' },
          headers: { origin: 'https://evil.example' },
        })
        assertCsrfRejected(t, res)
      })
    }
    t.equal((await me(app, accessToken)).statusCode, 200, 'the session survived every attempt')
  })

  await t.test('same-origin and allowed origins are let through', async (t) => {
    const cases: [string, Record<string, string>][] = [
      ['own origin', { origin: OWN_ORIGIN }],
      ['own origin, same-origin fetch metadata', { origin: OWN_ORIGIN, 'sec-fetch-site': 'same-origin' }],
      ['allowed origin', { origin: ALLOWED }],
      ['no origin, no fetch metadata', {}],
    ]
    for (const [name, headers] of cases) {
      await t.test(name, async (t) => {
        const { accessToken, cookies } = await login(app, 'carol')
        const res = await app.inject({ method: 'POST', url: '/api/auth/logout', cookies, headers })
        t.equal(res.statusCode, 204)
        t.equal((await me(app, accessToken)).statusCode, 401, 'the session was ended')
      })
    }
  })

  await t.test('refresh with a foreign origin is refused and the token survives', async (t) => {
    const { cookies } = await login(app, 'carol')
    const refreshCookie = { refresh_token: cookies.refresh_token ?? '' }
    const evil = await app.inject({
      method: 'POST',
      url: '/api/auth/refresh',
      cookies: refreshCookie,
      headers: { origin: 'https://evil.example' },
    })
    assertCsrfRejected(t, evil)
    const ok = await app.inject({
      method: 'POST',
      url: '/api/auth/refresh',
      cookies: refreshCookie,
      headers: { origin: OWN_ORIGIN },
    })
    t.equal(ok.statusCode, 200, 'the refresh token was not consumed')
    t.type(ok.json<Static<typeof TokenResponse>>().accessToken, 'string')
  })

  await t.test('a request with an Authorization header is not subject to the check', async (t) => {
    const { accessToken, cookies } = await login(app, 'carol')
    const res = await app.inject({
      method: 'POST',
      url: '/api/auth/logout-all',
      cookies,
      headers: { ...bearer(accessToken), origin: 'https://evil.example' },
    })
    t.equal(res.statusCode, 204)
    t.equal((await me(app, accessToken)).statusCode, 401, 'all sessions ended')
  })

  await t.test(
    'regression (review): cookie-borne PUT, PATCH and DELETE are checked too, and change nothing',
    async (t) => {
      const { cookies } = await login(app, 'carol')
      const access = { access_token: cookies.access_token ?? '' }
      const [me] = await app.sql<{ id: string; hash: string }[]>`
      select id, password_hash as hash from users where username = 'carol'`
      const posted = await app.inject({
        method: 'POST',
        url: '/api/comments',
        cookies: access,
        payload: { body: 'mine' },
      })
      const commentId = posted.json<{ id: string }>().id
      const foreign = { origin: 'https://evil.example' }
      const attempts = [
        {
          method: 'PUT',
          url: '/api/users/me/password',
          payload: { currentPassword: TEST_PASSWORD, newPassword: OTHER_PASSWORD },
        },
        { method: 'PATCH', url: `/api/comments/${commentId}`, payload: { body: 'defaced' } },
        { method: 'PATCH', url: `/api/admin/users/${me?.id}`, payload: { role: 'admin' } },
        { method: 'DELETE', url: `/api/comments/${commentId}` },
        { method: 'DELETE', url: '/api/auth/mfa/totp' },
      ] as const
      for (const attempt of attempts) {
        const res = await app.inject({ ...attempt, cookies: access, headers: foreign })
        t.equal(res.statusCode, 403, `${attempt.method} ${attempt.url}`)
        t.equal(res.json<{ type: string }>().type, 'urn:bulwark:problem:csrf-rejected')
      }
      const [after] = await app.sql<{ hash: string; role: string }[]>`
      select password_hash as hash, role from users where username = 'carol'`
      t.equal(after?.hash, me?.hash, 'the password is unchanged')
      t.equal(after?.role, 'user', 'the role is unchanged')
      const [comment] = await app.sql<{ body: string }[]>`select body from comments where id = ${commentId}`
      t.equal(comment?.body, 'mine', 'the comment is unchanged and still there')
    },
  )

  await t.test('safe methods are not checked', async (t) => {
    const { cookies } = await login(app, 'carol')
    const res = await app.inject({
      url: '/api/users/me',
      cookies: { access_token: cookies.access_token ?? '' },
      headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    })
    t.equal(res.statusCode, 200)
  })
})

t.test('only JSON bodies are accepted', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  await register(app, 'dave')
  const cases: [string, string][] = [
    ['text/plain', JSON.stringify({ username: 'dave', password: TEST_PASSWORD })],
    ['application/x-www-form-urlencoded', `username=dave&password=${TEST_PASSWORD}`],
    [
      'multipart/form-data; boundary=XyZ',
      '--XyZ\r\nContent-Disposition: form-data; name="username"\r\n\r\ndave\r\n' +
        `--XyZ\r\nContent-Disposition: form-data; name="password"\r\n\r\n${TEST_PASSWORD}\r\n--XyZ--\r\n`,
    ],
  ]
  for (const [type, payload] of cases) {
    await t.test(type, async (t) => {
      const res = await app.inject({
        method: 'POST',
        url: '/api/auth/login',
        headers: { 'content-type': type },
        payload,
      })
      expectProblem(t, res, 415)
      t.equal(res.headers['set-cookie'], undefined, 'no session was started')
    })
  }
  // Control: the same credentials as JSON log in.
  const json = await app.inject({
    method: 'POST',
    url: '/api/auth/login',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ username: 'dave', password: TEST_PASSWORD }),
  })
  t.equal(json.statusCode, 200)
})

t.test('cookie attributes in insecure (development) mode', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  await register(app, 'erin')
  const { res, accessToken, cookies } = await login(app, 'erin')
  t.equal(res.headers['cache-control'], 'no-store', 'login is not cached')

  await t.test('login sets both auth cookies, and the device cookie', async (t) => {
    t.equal(setCookies(res).length, 3)
    const access = cookieNamed(t, res, 'access_token')
    t.equal(access.value, accessToken, 'the access cookie holds the access token')
    t.same(access.attrs.httponly, true, 'HttpOnly')
    t.equal(access.attrs.samesite, 'Strict')
    t.equal(access.attrs.path, '/')
    t.equal(access.attrs['max-age'], '900')
    t.notOk('domain' in access.attrs, 'no Domain')
    t.notOk('secure' in access.attrs, 'no Secure over plain http')

    const refresh = cookieNamed(t, res, 'refresh_token')
    t.match(refresh.value, /^[A-Za-z0-9_-]{43}$/)
    t.same(refresh.attrs.httponly, true, 'HttpOnly')
    t.equal(refresh.attrs.samesite, 'Strict')
    t.equal(refresh.attrs.path, '/api/auth')
    t.equal(refresh.attrs['max-age'], '604800')
    t.notOk('domain' in refresh.attrs, 'no Domain')
    t.notOk('secure' in refresh.attrs, 'no Secure over plain http')
  })

  await t.test('refresh rotates the cookies and is not cached', async (t) => {
    const again = await app.inject({
      method: 'POST',
      url: '/api/auth/refresh',
      cookies: { refresh_token: cookies.refresh_token ?? '' },
    })
    t.equal(again.statusCode, 200)
    t.equal(again.headers['cache-control'], 'no-store')
    const refresh = cookieNamed(t, again, 'refresh_token')
    t.not(refresh.value, cookies.refresh_token, 'a new refresh token')
    t.equal(refresh.attrs.path, '/api/auth')
    t.equal(cookieNamed(t, again, 'access_token').attrs.path, '/')
  })

  await t.test('logout clears both cookies under the same names and paths', async (t) => {
    const session = await login(app, 'erin')
    const out = await app.inject({ method: 'POST', url: '/api/auth/logout', cookies: session.cookies })
    t.equal(out.statusCode, 204)
    t.equal(out.headers['cache-control'], 'no-store')
    const access = cookieNamed(t, out, 'access_token')
    t.equal(access.value, '')
    t.equal(access.attrs['max-age'], '0')
    t.equal(access.attrs.path, '/')
    t.same(access.attrs.httponly, true)
    t.notOk('domain' in access.attrs)
    const refresh = cookieNamed(t, out, 'refresh_token')
    t.equal(refresh.value, '')
    t.equal(refresh.attrs['max-age'], '0')
    t.equal(refresh.attrs.path, '/api/auth')
    t.notOk('domain' in refresh.attrs)
  })
})

t.test('cookie attributes in secure mode', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4', COOKIE_SECURE: 'true' } })
  await register(app, 'frank')
  const { res, accessToken, cookies } = await login(app, 'frank')
  t.equal(res.headers['cache-control'], 'no-store')

  await t.test('__Host- and __Secure- prefixed names with Secure', async (t) => {
    t.same(
      setCookies(res)
        .map((c) => c.name)
        .sort(),
      ['__Host-access_token', '__Host-device', '__Secure-refresh_token'],
    )
    const access = cookieNamed(t, res, '__Host-access_token')
    t.equal(access.value, accessToken)
    t.same(access.attrs.secure, true, 'Secure')
    t.same(access.attrs.httponly, true, 'HttpOnly')
    t.equal(access.attrs.samesite, 'Strict')
    t.equal(access.attrs.path, '/', '__Host- requires Path=/')
    t.notOk('domain' in access.attrs, '__Host- forbids Domain')
    const refresh = cookieNamed(t, res, '__Secure-refresh_token')
    t.same(refresh.attrs.secure, true, 'Secure')
    t.same(refresh.attrs.httponly, true, 'HttpOnly')
    t.equal(refresh.attrs.samesite, 'Strict')
    t.equal(refresh.attrs.path, '/api/auth')
    t.notOk('domain' in refresh.attrs)
  })

  await t.test('the prefixed cookies are the ones read', async (t) => {
    const viaCookie = await app.inject({
      url: '/api/users/me',
      cookies: { '__Host-access_token': accessToken },
    })
    t.equal(viaCookie.statusCode, 200)
    const unprefixed = await app.inject({ url: '/api/users/me', cookies: { access_token: accessToken } })
    t.equal(unprefixed.statusCode, 401, 'the unprefixed name is ignored in secure mode')
    const refreshed = await app.inject({
      method: 'POST',
      url: '/api/auth/refresh',
      cookies: { '__Secure-refresh_token': cookies['__Secure-refresh_token'] ?? '' },
    })
    t.equal(refreshed.statusCode, 200)
    t.equal(refreshed.headers['cache-control'], 'no-store')
  })

  await t.test('cross-site requests with the prefixed cookies are refused', async (t) => {
    const session = await login(app, 'frank')
    const res = await app.inject({
      method: 'POST',
      url: '/api/auth/logout',
      cookies: session.cookies,
      headers: { origin: 'https://evil.example' },
    })
    assertCsrfRejected(t, res)
    t.equal((await me(app, session.accessToken)).statusCode, 200)
  })

  await t.test('logout clears both prefixed cookies with Secure and the same paths', async (t) => {
    const session = await login(app, 'frank')
    const out = await app.inject({ method: 'POST', url: '/api/auth/logout', cookies: session.cookies })
    t.equal(out.statusCode, 204)
    const access = cookieNamed(t, out, '__Host-access_token')
    t.equal(access.value, '')
    t.equal(access.attrs['max-age'], '0')
    t.equal(access.attrs.path, '/')
    t.same(access.attrs.secure, true, 'a __Host- cookie can only be cleared with Secure')
    t.notOk('domain' in access.attrs)
    const refresh = cookieNamed(t, out, '__Secure-refresh_token')
    t.equal(refresh.value, '')
    t.equal(refresh.attrs['max-age'], '0')
    t.equal(refresh.attrs.path, '/api/auth')
    t.same(refresh.attrs.secure, true, 'a __Secure- cookie can only be cleared with Secure')
    t.equal((await me(app, session.accessToken)).statusCode, 401, 'the session was ended')
  })
})

t.test('ACCESS_TOKEN_TTL_SECONDS sets the access cookie Max-Age', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4', ACCESS_TOKEN_TTL_SECONDS: '120' } })
  await register(app, 'gina')
  const { res, accessToken } = await login(app, 'gina')
  t.equal(cookieNamed(t, res, 'access_token').attrs['max-age'], '120')
  t.equal(cookieNamed(t, res, 'refresh_token').attrs['max-age'], '604800', 'the refresh TTL is separate')
  t.equal(res.json<Static<typeof LoginResponse>>().expiresIn, 120)
  const payload = JSON.parse(Buffer.from(accessToken.split('.')[1] ?? '', 'base64url').toString())
  t.equal(payload.exp - payload.iat, 120, 'the token itself lives as long as the cookie')
})
