import { createHash, createHmac, createPublicKey, sign as cryptoSign, generateKeyPairSync } from 'node:crypto'
import type { Static } from '@sinclair/typebox'
import t, { type Test } from 'tap'
import type { App } from '../../../app.js'
import type { UserEnvelope } from '../../../schemas/auth.js'
import { DEV_JWT_SECRET } from '../../../schemas/env.js'
import { bearer, build, expectProblem, type InjectResponse, login, register } from '../../helper.js'

/** Attacker's-side tests of access-token verification (RFC 8725, RFC 6750). */

type Json = Record<string, unknown>
/** The JWKS document (routes/jwks.ts keeps its schema private): each key's members as JSON. */
type JwksJson = { keys: Json[] }

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

function parts(token: string): { header: Json; payload: Json; signature: string } {
  const [h, p, s] = token.split('.')
  return {
    header: JSON.parse(Buffer.from(h ?? '', 'base64url').toString()) as Json,
    payload: JSON.parse(Buffer.from(p ?? '', 'base64url').toString()) as Json,
    signature: s ?? '',
  }
}

/** An HMAC-signed JWT built by hand, so every header field and claim is under the test's control. */
function hmacToken(header: Json, payload: Json, secret: string | Buffer, hash = 'sha256'): string {
  const input = `${b64(header)}.${b64(payload)}`
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`
}

/** An ES256 JWT built by hand (JOSE signatures are r||s, not DER). */
function es256Token(header: Json, payload: Json, privateKeyPem: string): string {
  const input = `${b64(header)}.${b64(payload)}`
  const signature = cryptoSign('sha256', Buffer.from(input), {
    key: privateKeyPem,
    dsaEncoding: 'ieee-p1363',
  })
  return `${input}.${signature.toString('base64url')}`
}

function ecKeys() {
  return generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  })
}

function keyEnv(keys: { privateKey: string; publicKey: string }, previous?: string): Record<string, string> {
  return {
    BCRYPT_COST: '4',
    JWT_PRIVATE_KEY: keys.privateKey,
    JWT_PUBLIC_KEY: keys.publicKey,
    ...(previous ? { JWT_PREVIOUS_PUBLIC_KEY: previous } : {}),
  }
}

const me = (app: App, token?: string, url = '/api/users/me') =>
  app.inject({
    method: 'GET',
    url,
    ...(token === undefined ? {} : { headers: bearer(token) }),
  })

/** 401, the RFC 6750 challenge, and a problem+json body. */
function assertRejected(t: Test, res: InjectResponse, tokenSent = true) {
  const type = tokenSent ? 'urn:bulwark:problem:invalid-token' : 'urn:bulwark:problem:unauthenticated'
  const body = expectProblem(t, res, 401, type, 'rejected')
  t.equal(res.headers['www-authenticate'], tokenSent ? 'Bearer error="invalid_token"' : 'Bearer', 'challenge')
  t.notOk('user' in body, 'no user data in the body')
}

function assertAccepted(t: Test, res: InjectResponse, username: string) {
  t.equal(res.statusCode, 200, 'status 200')
  t.equal(res.json<Static<typeof UserEnvelope>>().user?.username, username, 'the token holder')
}

t.test('HS256 (default) access tokens', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  await register(app, 'alice')
  const { accessToken, cookies } = await login(app, 'alice')
  const valid = parts(accessToken)
  const now = Math.floor(Date.now() / 1000)
  /** Valid claims with fresh times, for hand-built tokens. */
  const claims = (over: Json = {}): Json => ({ ...valid.payload, iat: now, exp: now + 600, ...over })
  const hs = (payload: Json, header: Json = { alg: 'HS256', typ: 'at+jwt' }) =>
    hmacToken(header, payload, DEV_JWT_SECRET)

  await t.test('controls: the issued token, and one built by hand with the right secret, work', async (t) => {
    t.equal(valid.header.alg, 'HS256')
    t.equal(valid.header.typ, 'at+jwt', 'typed as an access token (RFC 9068 §2.1)')
    t.match(valid.payload, { iss: 'bulwark', aud: 'bulwark-api', sub: String, sid: String })
    t.notOk('role' in valid.payload || 'username' in valid.payload, 'no role or name to authorize on')
    assertAccepted(t, await me(app, accessToken), 'alice')
    assertAccepted(t, await me(app, hs(claims())), 'alice')
  })

  await t.test('regression: the JWT profile (RFC 9068, RFC 8725)', async (t) => {
    for (const typ of ['JWT', 'jwt', undefined, 'at+jwt2', 'JOSE']) {
      const header = typ === undefined ? { alg: 'HS256' } : { alg: 'HS256', typ }
      assertRejected(t, await me(app, hs(claims(), header)))
    }
    assertAccepted(t, await me(app, hs(claims(), { alg: 'HS256', typ: 'application/at+jwt' })), 'alice')
    assertRejected(t, await me(app, hs(claims({ iat: now + 300, exp: now + 600 }))), true)
    assertAccepted(t, await me(app, hs(claims({ iat: now + 30, exp: now + 600 }))), 'alice')
    // Signed with our key but minted to live longer than ACCESS_TOKEN_TTL_SECONDS (900).
    assertRejected(t, await me(app, hs(claims({ iat: now - 10, exp: now + 3600 }))))
    assertAccepted(t, await me(app, hs(claims({ iat: now - 10, exp: now + 890 }))), 'alice')
  })

  await t.test('no token at all', async (t) => {
    assertRejected(t, await me(app), false)
  })

  await t.test('malformed Authorization headers', async (t) => {
    for (const authorization of ['Basic x', 'Bearer', 'Bearer ', 'Bearer a b', `Bearer  ${accessToken}`]) {
      await t.test(JSON.stringify(authorization), async (t) => {
        assertRejected(t, await app.inject({ url: '/api/users/me', headers: { authorization } }))
      })
    }
  })

  await t.test('a token in the query string does not authenticate', async (t) => {
    for (const name of ['access_token', 'token']) {
      await t.test(name, async (t) => {
        assertRejected(t, await me(app, undefined, `/api/users/me?${name}=${accessToken}`), false)
      })
    }
  })

  await t.test('alg none with the valid payload', async (t) => {
    const none = `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(valid.payload)}.`
    assertRejected(t, await me(app, none))
    const noneWithSig = `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(valid.payload)}.${valid.signature}`
    assertRejected(t, await me(app, noneWithSig))
  })

  await t.test('a modified claim under the original signature', async (t) => {
    const header = accessToken.split('.')[0]
    const tampered = `${header}.${b64({ ...valid.payload, role: 'admin' })}.${valid.signature}`
    assertRejected(t, await me(app, tampered))
  })

  await t.test('signed with another HS256 secret', async (t) => {
    assertRejected(t, await me(app, hmacToken({ alg: 'HS256', typ: 'at+jwt' }, claims(), 'x'.repeat(51))))
  })

  await t.test('signed HS384 with the right secret (algorithm pinned)', async (t) => {
    assertRejected(
      t,
      await me(app, hmacToken({ alg: 'HS384', typ: 'at+jwt' }, claims(), DEV_JWT_SECRET, 'sha384')),
    )
    assertRejected(
      t,
      await me(app, hmacToken({ alg: 'HS512', typ: 'at+jwt' }, claims(), DEV_JWT_SECRET, 'sha512')),
    )
  })

  await t.test('required claims and their values', async (t) => {
    const { exp: _exp, ...noExp } = claims()
    const cases: [string, Json][] = [
      ['missing exp', noExp],
      ['expired', claims({ iat: now - 7200, exp: now - 3600 })],
      ['wrong iss', claims({ iss: 'evil' })],
      ['wrong aud', claims({ aud: 'another-api' })],
      ['aud as a list without ours', claims({ aud: ['another-api'] })],
      ['missing sid', (({ sid: _sid, ...rest }) => rest)(claims())],
      ['unknown session', claims({ sid: '00000000-0000-4000-8000-000000000000' })],
    ]
    for (const [name, payload] of cases) {
      await t.test(name, async (t) => {
        assertRejected(t, await me(app, hs(payload)))
      })
    }
  })

  await t.test('the refresh token used as a Bearer token', async (t) => {
    const refreshToken = cookies.refresh_token
    t.ok(refreshToken, 'login set a refresh cookie')
    assertRejected(t, await me(app, refreshToken))
  })

  await t.test('a token of a logged-out session is dead at once', async (t) => {
    const session = await login(app, 'alice')
    assertAccepted(t, await me(app, session.accessToken), 'alice')
    const logout = await app.inject({
      method: 'POST',
      url: '/api/auth/logout',
      headers: bearer(session.accessToken),
    })
    t.equal(logout.statusCode, 204)
    assertRejected(t, await me(app, session.accessToken))
    assertAccepted(t, await me(app, accessToken), 'alice')
  })

  await t.test('the access cookie alone authenticates', async (t) => {
    const res = await app.inject({ url: '/api/users/me', cookies: { access_token: accessToken } })
    assertAccepted(t, res, 'alice')
    const forged = await app.inject({
      url: '/api/users/me',
      cookies: { access_token: hmacToken({ alg: 'HS256', typ: 'at+jwt' }, claims(), 'y'.repeat(40)) },
    })
    assertRejected(t, forged)
  })

  await t.test('an access token used as the refresh cookie', async (t) => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/auth/refresh',
      cookies: { refresh_token: accessToken },
    })
    const body = expectProblem(t, res, 401, 'urn:bulwark:problem:invalid-refresh-token')
    t.notOk('accessToken' in body, 'no token issued')
  })
})

t.test('ES256 keys, JWKS and key rotation', async (t) => {
  const first = ecKeys()
  const app1 = await build(t, { env: keyEnv(first) })
  await register(app1, 'erin')
  const { accessToken } = await login(app1, 'erin')
  const token = parts(accessToken)
  const kid1 = token.header.kid
  const now = Math.floor(Date.now() / 1000)
  const claims = (over: Json = {}): Json => ({ ...token.payload, iat: now, exp: now + 600, ...over })

  await t.test('tokens are ES256 with a kid, and the JWKS publishes that key', async (t) => {
    t.equal(token.header.alg, 'ES256')
    t.type(kid1, 'string')
    t.ok((kid1 as string).length > 0, 'kid is not empty')
    assertAccepted(t, await me(app1, accessToken), 'erin')

    const jwks = await app1.inject({ url: '/.well-known/jwks.json' })
    t.equal(jwks.statusCode, 200)
    const keys = jwks.json<JwksJson>().keys
    t.equal(keys.length, 1)
    t.match(keys[0], { kid: kid1, kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' })
    t.notOk(keys[0] && 'd' in keys[0], 'no private key material')
    // RFC 7638 thumbprint of the public key, computed independently.
    const jwk = createPublicKey(first.publicKey).export({ format: 'jwk' })
    const thumbprint = createHash('sha256')
      .update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }))
      .digest('base64url')
    t.equal(kid1, thumbprint, 'kid is the RFC 7638 thumbprint')
  })

  await t.test('HS256 signed with the public key PEM as the HMAC secret (key confusion)', async (t) => {
    const pemDer = createPublicKey(first.publicKey).export({ format: 'der', type: 'spki' })
    for (const secret of [first.publicKey, first.publicKey.trim(), pemDer]) {
      assertRejected(
        t,
        await me(app1, hmacToken({ alg: 'HS256', typ: 'at+jwt', kid: kid1 }, claims(), secret)),
      )
      assertRejected(t, await me(app1, hmacToken({ alg: 'HS256', typ: 'at+jwt' }, claims(), secret)))
    }
    // The HS256 default secret is not accepted either once keys are configured.
    assertRejected(t, await me(app1, hmacToken({ alg: 'HS256', typ: 'at+jwt' }, claims(), DEV_JWT_SECRET)))
  })

  await t.test('alg none on the ES256 app', async (t) => {
    assertRejected(
      t,
      await me(app1, `${b64({ alg: 'none', typ: 'at+jwt', kid: kid1 })}.${b64(token.payload)}.`),
    )
  })

  await t.test('a token signed by another EC key, claiming our kid', async (t) => {
    const other = ecKeys()
    const header = { alg: 'ES256', typ: 'at+jwt', kid: kid1 }
    // Control: the same construction with the real key passes.
    assertAccepted(t, await me(app1, es256Token(header, claims(), first.privateKey)), 'erin')
    assertRejected(t, await me(app1, es256Token(header, claims(), other.privateKey)))
  })

  const second = ecKeys()
  const app2 = await build(t, { env: keyEnv(second, first.publicKey) })

  await t.test('rotation: the previous public key still verifies tokens it signed', async (t) => {
    assertAccepted(t, await me(app2, accessToken), 'erin')
    const fresh = await login(app2, 'erin')
    const kid2 = parts(fresh.accessToken).header.kid
    t.type(kid2, 'string')
    t.not(kid2, kid1, 'the new key has its own kid')
    assertAccepted(t, await me(app2, fresh.accessToken), 'erin')
    // The old app does not know the new key.
    assertRejected(t, await me(app1, fresh.accessToken))

    const keys = (await app2.inject({ url: '/.well-known/jwks.json' })).json<JwksJson>().keys
    t.same(keys.map((k) => k.kid).sort(), [kid1, kid2].sort(), 'both kids listed')
    for (const key of keys) t.match(key, { kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' })
  })

  await t.test('rotation: a previous-key token still gets every claim check', async (t) => {
    const header = { alg: 'ES256', typ: 'at+jwt', kid: kid1 }
    assertAccepted(t, await me(app2, es256Token(header, claims(), first.privateKey)), 'erin')
    const { exp: _exp, ...noExp } = claims()
    assertRejected(t, await me(app2, es256Token(header, claims({ iss: 'evil' }), first.privateKey)))
    assertRejected(t, await me(app2, es256Token(header, claims({ aud: 'other' }), first.privateKey)))
    assertRejected(t, await me(app2, es256Token(header, noExp, first.privateKey)))
    assertRejected(
      t,
      await me(app2, es256Token(header, claims({ iat: now - 7200, exp: now - 3600 }), first.privateKey)),
    )
    // Key confusion with the previous public key, under its kid.
    assertRejected(
      t,
      await me(app2, hmacToken({ alg: 'HS256', typ: 'at+jwt', kid: kid1 }, claims(), first.publicKey)),
    )
    // A kid naming the previous key does not let another key's signature through.
    assertRejected(t, await me(app2, es256Token(header, claims(), ecKeys().privateKey)))
    // The old key's signature under the new key's kid is checked against the new key.
    const kid2 = parts((await login(app2, 'erin')).accessToken).header.kid
    assertRejected(t, await me(app2, es256Token({ ...header, kid: kid2 }, claims(), first.privateKey)))
  })

  await t.test('without the previous key, its tokens are refused', async (t) => {
    const app3 = await build(t, { env: keyEnv(ecKeys()) })
    assertRejected(t, await me(app3, accessToken))
    const keys = (await app3.inject({ url: '/.well-known/jwks.json' })).json<JwksJson>().keys
    t.equal(keys.length, 1)
    t.not(keys[0]?.kid, kid1, 'the old kid is no longer published')
  })
})

t.test('Ed25519 keys give EdDSA tokens', async (t) => {
  const keys = generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  })
  const app = await build(t, { env: keyEnv(keys) })
  await register(app, 'edna')
  const { accessToken } = await login(app, 'edna')
  const { header } = parts(accessToken)
  t.equal(header.alg, 'EdDSA')
  t.type(header.kid, 'string')
  assertAccepted(t, await me(app, accessToken), 'edna')
  const jwks = (await app.inject({ url: '/.well-known/jwks.json' })).json<JwksJson>().keys
  t.equal(jwks.length, 1)
  t.match(jwks[0], { kid: header.kid, kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' })
  t.notOk(jwks[0] && 'd' in jwks[0], 'no private key material')
  assertRejected(
    t,
    await me(app, hmacToken({ alg: 'HS256', typ: 'at+jwt' }, parts(accessToken).payload, keys.publicKey)),
  )
})
