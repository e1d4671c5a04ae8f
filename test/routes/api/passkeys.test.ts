import t from 'tap'
import {
  attemptLogin,
  build,
  expectProblem,
  injectAs,
  signUp,
  tokenClaims,
  uniqueName,
} from '../../helper.js'
import {
  anonymous,
  passkeyLogin,
  registerPasskey,
  SoftAuthenticator,
} from '../../support/passkey-authenticator.js'

/** Passkeys from the user's side: registration, sign-in like a password's, management, settings. */

const P = 'urn:bulwark:problem:'

t.test(
  'registration options: discoverable, user verification, no attestation, existing ones excluded',
  async (t) => {
    const app = await build(t)
    const user = await signUp(app, 'pkopts')
    const res = await user.inject({ method: 'POST', url: '/api/auth/passkeys/register/options' })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['cache-control'], 'no-store')
    const options = res.json()
    t.match(options, {
      challenge: /^[A-Za-z0-9_-]{43}$/,
      rp: { id: 'localhost', name: 'Bulwark' },
      user: { id: Buffer.from(user.id.replace(/-/g, ''), 'hex').toString('base64url'), name: user.username },
      timeout: 300_000,
      attestation: 'none',
      excludeCredentials: [],
      authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
    })
    t.same(
      options.pubKeyCredParams.map((p: { alg: number }) => p.alg),
      [-8, -7, -257],
      'EdDSA, ES256, RS256',
    )
    const [row] =
      await app.sql`select purpose, user_id, expires_at - now() as ttl from webauthn_challenges where user_id = ${user.id}`
    t.equal(row?.purpose, 'register')

    const authenticator = new SoftAuthenticator()
    t.equal((await registerPasskey(user.inject, authenticator)).statusCode, 201)
    const again = await user.inject({ method: 'POST', url: '/api/auth/passkeys/register/options' })
    t.match(again.json().excludeCredentials, [
      {
        id: authenticator.credentialId.toString('base64url'),
        type: 'public-key',
        transports: ['internal', 'hybrid'],
      },
    ])
    const pending =
      await app.sql`select 1 from webauthn_challenges where user_id = ${user.id} and purpose = 'register'`
    t.equal(pending.length, 1, 'one pending registration per user: the new options replaced the old')
  },
)

t.test('register, list, then sign in with the passkey exactly like with a password', async (t) => {
  const app = await build(t)
  const user = await signUp(app, 'pkflow')
  const authenticator = new SoftAuthenticator()
  const created = await registerPasskey(user.inject, authenticator, { name: '  Work laptop  ' })
  t.equal(created.statusCode, 201)
  const passkey = created.json<{ id: string; name: string }>()
  t.match(passkey, {
    id: String,
    name: 'Work laptop',
    deviceType: 'singleDevice',
    backedUp: false,
    lastUsedAt: null,
  })
  t.same(Object.keys(passkey).sort(), [
    'backedUp',
    'createdAt',
    'deviceType',
    'id',
    'lastUsedAt',
    'name',
    'transports',
  ])

  const [row] = await app.sql`
    select user_id, counter, backup_eligible, backed_up, transports, public_key from webauthn_credentials where id = ${passkey.id}`
  t.match(row, {
    userId: user.id,
    counter: '0',
    backupEligible: false,
    backedUp: false,
    transports: ['internal', 'hybrid'],
  })
  const [audit] =
    await app.sql`select detail from audit_events where user_id = ${user.id} and event = 'auth.passkey.registered'`
  t.match(audit?.detail, { passkeyId: passkey.id, deviceType: 'singleDevice' })

  const list = await user.inject('/api/auth/passkeys')
  t.equal(list.statusCode, 200)
  t.same(list.json().items, [passkey])
  t.notMatch(list.body, authenticator.credentialId.toString('base64url'), 'no credential id or key leaves')

  const password = await attemptLogin(app, user.username)
  const res = await passkeyLogin(anonymous(app), authenticator)
  t.equal(res.statusCode, 200, res.body)
  const body = res.json()
  t.same(Object.keys(body).sort(), Object.keys(password.json()).sort(), 'the same body as a password sign-in')
  t.same(body.user, password.json().user)
  t.same(
    res.cookies.map((c) => c.name).sort(),
    password.cookies.map((c) => c.name).sort(),
    'the same cookies (access, refresh, device)',
  )
  const claims = tokenClaims(body.accessToken)
  t.same(claims.amr, ['hwk', 'mfa'], 'a device-bound passkey: hwk, and multi-factor')
  t.ok(Math.abs(Number(claims.auth_time) - Date.now() / 1000) < 10, 'auth_time is now')
  const [session] = await app.sql`select amr from sessions where id = ${claims.sid as string}`
  t.same(session?.amr, ['hwk', 'mfa'])
  const [success] = await app.sql`
    select detail from audit_events where user_id = ${user.id} and event = 'auth.login.success' order by created_at desc limit 1`
  t.equal(success?.detail.amr, 'hwk mfa')
  const [used] =
    await app.sql`select counter, last_used_at from webauthn_credentials where id = ${passkey.id}`
  t.equal(used?.counter, '1', 'the counter is stored')
  t.ok(used?.lastUsedAt)

  // A passkey sign-in is a recent authentication: sensitive routes pass at once.
  const fresh = injectAs(app, body.accessToken)
  t.equal((await fresh({ method: 'POST', url: '/api/auth/passkeys/register/options' })).statusCode, 200)
  // And with the account named first.
  const named = await passkeyLogin(anonymous(app), authenticator, { username: user.username.toUpperCase() })
  t.equal(named.statusCode, 200, named.body)
})

t.test(
  'a synced passkey signs in as swk; its backed-up state may change, and a counter of 0 is accepted',
  async (t) => {
    const app = await build(t)
    const user = await signUp(app, 'pksync')
    const authenticator = new SoftAuthenticator(undefined, undefined, true, false)
    const created = (await registerPasskey(user.inject, authenticator)).json()
    t.match(created, { name: 'Passkey', deviceType: 'multiDevice', backedUp: true })
    const first = await passkeyLogin(anonymous(app), authenticator)
    t.same(tokenClaims(first.json().accessToken).amr, ['swk', 'mfa'])
    const second = await passkeyLogin(anonymous(app), authenticator, {
      tweaks: { flags: 0x01 | 0x04 | 0x08 },
    })
    t.equal(second.statusCode, 200, 'BS may change (WebAuthn L3 §6.1.3), the counter may stay 0')
    // Device-bound is the credential's BE (fixed, WebAuthn L3 §6.1.3), not this assertion's BS.
    t.same(
      tokenClaims(second.json().accessToken).amr,
      ['swk', 'mfa'],
      'not backed up now, still multi-device: swk',
    )
    t.match((await user.inject('/api/auth/passkeys')).json().items, [
      { deviceType: 'multiDevice', backedUp: false },
    ])
  },
)

t.test("rename and remove: own passkeys only (404 for another user's), names checked", async (t) => {
  const app = await build(t)
  const alice = await signUp(app, 'pkalice')
  const bob = await signUp(app, 'pkbob')
  const authenticator = new SoftAuthenticator()
  const { id } = (await registerPasskey(alice.inject, authenticator)).json<{ id: string }>()
  const rename = (who: typeof alice, name: unknown) =>
    who.inject({ method: 'PATCH', url: `/api/auth/passkeys/${id}`, payload: { name } })

  const renamed = await rename(alice, ' Phone ')
  t.equal(renamed.statusCode, 200)
  t.equal(renamed.json().name, 'Phone')
  const [audit] =
    await app.sql`select detail from audit_events where user_id = ${alice.id} and event = 'auth.passkey.renamed'`
  t.same(audit?.detail, { passkeyId: id })
  expectProblem(t, await rename(bob, 'Mine now'), 404, undefined, "another user's passkey")
  expectProblem(t, await bob.inject({ method: 'DELETE', url: `/api/auth/passkeys/${id}` }), 404)
  for (const bad of ['   ', 'a\u0000b', 'evil\u202eexe', 'x'.repeat(65), 12]) {
    expectProblem(t, await rename(alice, bad), 400, `${P}validation-error`, JSON.stringify(bad))
  }
  t.equal((await rename(alice, '😀'.repeat(64))).statusCode, 200, '64 characters, counted as characters')
  const none = await alice.inject({
    method: 'PATCH',
    url: '/api/auth/passkeys/00000000-0000-4000-8000-000000000000',
    payload: { name: 'x' },
  })
  expectProblem(t, none, 404)

  t.equal((await alice.inject({ method: 'DELETE', url: `/api/auth/passkeys/${id}` })).statusCode, 204)
  const [removed] =
    await app.sql`select detail from audit_events where user_id = ${alice.id} and event = 'auth.passkey.removed'`
  t.same(removed?.detail, { passkeyId: id })
  t.same((await alice.inject('/api/auth/passkeys')).json().items, [])
  const gone = await passkeyLogin(anonymous(app), authenticator)
  expectProblem(t, gone, 401, `${P}invalid-passkey`, 'a removed passkey signs in no more')
})

t.test('registration and removal need a recent authentication; listing and renaming do not', async (t) => {
  const app = await build(t)
  const user = await signUp(app, 'pkstale')
  const { id } = (await registerPasskey(user.inject, new SoftAuthenticator())).json<{ id: string }>()
  const started = await user.inject({ method: 'POST', url: '/api/auth/passkeys/register/options' })
  await app.sql`update sessions set auth_time = now() - interval '1 hour' where user_id = ${user.id}`
  const stale = `${P}reauthentication-required`
  expectProblem(
    t,
    await user.inject({ method: 'POST', url: '/api/auth/passkeys/register/options' }),
    401,
    stale,
  )
  const late = await user.inject({
    method: 'POST',
    url: '/api/auth/passkeys/register',
    payload: { credential: new SoftAuthenticator().create(started.json()) },
  })
  expectProblem(t, late, 401, stale, 'register')
  expectProblem(
    t,
    await user.inject({ method: 'DELETE', url: `/api/auth/passkeys/${id}` }),
    401,
    stale,
    'remove',
  )
  t.equal((await user.inject('/api/auth/passkeys')).statusCode, 200)
  t.equal(
    (await user.inject({ method: 'PATCH', url: `/api/auth/passkeys/${id}`, payload: { name: 'x' } }))
      .statusCode,
    200,
  )
  expectProblem(
    t,
    await app.inject({ method: 'POST', url: '/api/auth/passkeys/register/options' }),
    401,
    `${P}unauthenticated`,
  )
})

t.test('at most 20 passkeys per account: 409 at the options and at the registration', async (t) => {
  const app = await build(t)
  const user = await signUp(app, 'pkcap')
  const started = await user.inject({ method: 'POST', url: '/api/auth/passkeys/register/options' })
  for (let i = 0; i < 20; i++) {
    await app.sql`
      insert into webauthn_credentials (id, user_id, credential_id, public_key, backup_eligible, backed_up, name)
      values (gen_random_uuid(), ${user.id}, ${Buffer.from(`credential-number-${i}-of-twenty`)}, '\\x00', false, false, 'k')`
  }
  const late = await user.inject({
    method: 'POST',
    url: '/api/auth/passkeys/register',
    payload: { credential: new SoftAuthenticator().create(started.json()) },
  })
  expectProblem(t, late, 409, `${P}conflict`, 'register')
  expectProblem(
    t,
    await user.inject({ method: 'POST', url: '/api/auth/passkeys/register/options' }),
    409,
    `${P}conflict`,
  )
})

t.test('MFA_REQUIRED_ROLES: a passkey session is two-factor', async (t) => {
  const app = await build(t, { env: { MFA_REQUIRED_ROLES: 'admin' } })
  const admin = await signUp(app, 'pkadmin', { role: 'admin' })
  expectProblem(t, await admin.inject('/api/admin/users'), 403, `${P}mfa-required`, 'password only')
  const authenticator = new SoftAuthenticator()
  t.equal(
    (await registerPasskey(admin.inject, authenticator)).statusCode,
    201,
    'passkeys can be added without mfa',
  )
  const res = await passkeyLogin(anonymous(app), authenticator, { username: admin.username })
  t.equal((await injectAs(app, res.json().accessToken)('/api/admin/users')).statusCode, 200)
})

t.test('the same refusals as a password sign-in, told only after a valid assertion', async (t) => {
  const app = await build(t)
  const user = await signUp(app, 'pkrefuse')
  const authenticator = new SoftAuthenticator()
  await registerPasskey(user.inject, authenticator)
  const strict = await build(t, { env: { REQUIRE_VERIFIED_EMAIL: 'true' } })
  const unverified = await passkeyLogin(anonymous(strict), authenticator)
  expectProblem(t, unverified, 403, `${P}email-not-verified`)

  await app.sql`update users set disabled = true where id = ${user.id}`
  expectProblem(t, await passkeyLogin(anonymous(app), authenticator), 403, `${P}account-disabled`)
  const forged = await passkeyLogin(anonymous(app), authenticator, { tweaks: { tamper: true } })
  expectProblem(t, forged, 401, `${P}invalid-passkey`, 'without a valid assertion, nothing is told')
  const events = await app.sql`
    select detail from audit_events where user_id = ${user.id} and event = 'auth.login.failure' order by created_at`
  t.match(
    events.map((e) => e.detail),
    [{ reason: 'email_not_verified' }, { reason: 'disabled', method: 'passkey' }],
  )
})

t.test('settings: WEBAUTHN_ORIGINS=none turns every route off with 501 passkeys-disabled', async (t) => {
  const app = await build(t, { env: { WEBAUTHN_ORIGINS: 'none' } })
  for (const [method, url] of [
    ['POST', '/api/auth/passkeys/login/options'],
    ['POST', '/api/auth/passkeys/login'],
    ['GET', '/api/auth/passkeys'],
    ['POST', '/api/auth/passkeys/register/options'],
  ] as const) {
    expectProblem(t, await app.inject({ method, url, payload: {} }), 501, `${P}passkeys-disabled`, url)
  }
  const custom = await build(t, {
    env: { WEBAUTHN_ORIGINS: 'https://example.test,https://app.example.test', WEBAUTHN_RP_NAME: 'Example' },
  })
  const user = await signUp(custom, uniqueName('pkrp'))
  const options = (await user.inject({ method: 'POST', url: '/api/auth/passkeys/register/options' })).json()
  t.same(options.rp, { id: 'example.test', name: 'Example' }, "RP ID: the first origin's host by default")
})
