import t from 'tap'
import { recordUse } from '../../../repositories/passkeys.js'
import { build, expectProblem, signUp } from '../../helper.js'
import {
  anonymous,
  FLAGS,
  passkeyLogin,
  registerPasskey,
  SoftAuthenticator,
} from '../../support/passkey-authenticator.js'

/** Passkey ceremonies from the attacker's side: every failure is one 401, its reason only audited. */

const P = 'urn:bulwark:problem:'
const INVALID = `${P}invalid-passkey`

t.test('passkey ceremonies under attack', async (t) => {
  const app = await build(t)
  const anon = anonymous(app)
  const alice = await signUp(app, 'pkatka')
  const bob = await signUp(app, 'pkatkb')
  const aliceKey = new SoftAuthenticator()
  const bobKey = new SoftAuthenticator()
  t.equal((await registerPasskey(alice.inject, aliceKey)).statusCode, 201)
  t.equal((await registerPasskey(bob.inject, bobKey)).statusCode, 201)
  const details = new Set<string>()

  /** The last passkey audit event: its name and detail. */
  async function lastEvent() {
    const [row] = await app.sql<{ event: string; userId: string | null; detail: Record<string, unknown> }[]>`
      select event, user_id, detail from audit_events where event like 'auth.passkey.%'
      order by created_at desc limit 1`
    return row
  }
  async function refused(
    res: Awaited<ReturnType<typeof anon>>,
    reason: string,
    label: string,
    event = 'auth.passkey.failed',
  ) {
    const body = expectProblem(t, res, 401, INVALID, label)
    details.add(body.detail)
    t.notMatch(res.body, reason, `${label}: the reason is not told`)
    const last = await lastEvent()
    t.equal(last?.event, event, `${label}: audited as ${event}`)
    t.equal(last?.detail.reason, reason, `${label}: audited reason ${reason}`)
    return last
  }
  const loginOptions = async (payload: object = {}) =>
    (await anon({ method: 'POST', url: '/api/auth/passkeys/login/options', payload })).json<{
      challenge: string
    }>()
  const login = (credential: unknown) =>
    anon({ method: 'POST', url: '/api/auth/passkeys/login', payload: { credential } })

  await t.test('a wrong origin, and the challenge is spent by the failure', async (t) => {
    const options = await loginOptions()
    await refused(await login(aliceKey.get(options, { origin: 'https://evil.example' })), 'origin', 'login')
    await refused(await login(aliceKey.get(options)), 'unknown_challenge', 'the same challenge again')
    const reg = await registerPasskey(alice.inject, new SoftAuthenticator(), {
      tweaks: { origin: 'http://localhost:3001' },
    })
    await refused(reg, 'origin', 'register')
    t.equal((await lastEvent())?.userId, alice.id, 'the failure is audited on the account')
  })

  await t.test('a wrong RP ID hash', async () => {
    await refused(await passkeyLogin(anon, aliceKey, { tweaks: { rpId: 'evil.example' } }), 'rp_id', 'login')
    const reg = await registerPasskey(alice.inject, new SoftAuthenticator(), {
      tweaks: { rpId: 'localhost.evil' },
    })
    await refused(reg, 'rp_id', 'register')
  })

  await t.test('a replayed assertion', async (t) => {
    const options = await loginOptions()
    const credential = aliceKey.get(options)
    t.equal((await login(credential)).statusCode, 200)
    await refused(await login(credential), 'unknown_challenge', 'replay')
  })

  await t.test('an expired challenge', async () => {
    const options = await loginOptions()
    await app.sql`update webauthn_challenges set expires_at = now() - interval '1 second'`
    await refused(await login(aliceKey.get(options)), 'challenge_expired', 'expired')
  })

  await t.test("one ceremony's challenge in the other (type mismatch)", async () => {
    const forLogin = await loginOptions()
    const payload = {
      credential: new SoftAuthenticator().create({ ...forLogin, rp: {}, user: { id: 'AA' } }),
    }
    const reg = await alice.inject({ method: 'POST', url: '/api/auth/passkeys/register', payload })
    await refused(reg, 'challenge_purpose', 'a login challenge for a registration')
    const started = await alice.inject({ method: 'POST', url: '/api/auth/passkeys/register/options' })
    await refused(
      await login(aliceKey.get(started.json())),
      'challenge_purpose',
      'a registration challenge for a login',
    )
    const options = await loginOptions()
    await refused(
      await login(aliceKey.get(options, { type: 'webauthn.create' })),
      'ceremony_type',
      'clientData type',
    )
  })

  await t.test("another user's credential", async (t) => {
    const last = await refused(
      await passkeyLogin(anon, bobKey, { username: alice.username }),
      'other_user',
      "options for alice, bob's passkey",
    )
    t.equal(last?.userId, bob.id, "audited on the credential's owner")
    await refused(
      await passkeyLogin(anon, bobKey, { tweaks: { userHandle: aliceKey.userHandle } }),
      'user_handle',
      "bob's passkey with alice's user handle",
    )
    await refused(
      await passkeyLogin(anon, bobKey, { tweaks: { userHandle: null } }),
      'user_handle',
      'no user handle',
    )
    await refused(
      await passkeyLogin(anon, aliceKey, { username: 'nobody-here' }),
      'other_user',
      'an unknown name',
    )
    // A registration challenge belongs to the user who asked for it.
    const started = await alice.inject({ method: 'POST', url: '/api/auth/passkeys/register/options' })
    const payload = { credential: new SoftAuthenticator().create(started.json()) }
    await refused(
      await bob.inject({ method: 'POST', url: '/api/auth/passkeys/register', payload }),
      'other_user',
      'register',
    )
    // WebAuthn L3 §7.1 step 26: bob cannot claim alice's credential id with his own key.
    const claim = await registerPasskey(bob.inject, new SoftAuthenticator(), {
      tweaks: { credentialId: aliceKey.credentialId },
    })
    await refused(claim, 'credential_exists', "alice's credential id")
    const [owner] =
      await app.sql`select user_id from webauthn_credentials where credential_id = ${aliceKey.credentialId}`
    t.equal(owner?.userId, alice.id)
  })

  await t.test('a tampered signature, an unknown credential', async () => {
    await refused(
      await passkeyLogin(anon, aliceKey, { tweaks: { tamper: true } }),
      'bad_signature',
      'tampered',
    )
    const stranger = new SoftAuthenticator()
    stranger.userHandle = aliceKey.userHandle
    await refused(await passkeyLogin(anon, stranger), 'unknown_credential', 'unknown')
    // Alice's credential id, signed by another key.
    const forger = new SoftAuthenticator()
    forger.userHandle = aliceKey.userHandle
    await refused(
      await passkeyLogin(anon, forger, { tweaks: { credentialId: aliceKey.credentialId } }),
      'bad_signature',
      'forged',
    )
  })

  await t.test('a counter rollback is refused and audited as a clone', async (t) => {
    t.equal((await passkeyLogin(anon, aliceKey, { tweaks: { counter: 50 } })).statusCode, 200)
    for (const counter of [49, 50, 0]) {
      const last = await refused(
        await passkeyLogin(anon, aliceKey, { tweaks: { counter } }),
        'counter_rollback',
        `counter ${counter} after 50`,
        'auth.passkey.cloned',
      )
      t.match(last?.detail, {
        credentialId: aliceKey.credentialId.toString('base64url'),
        counter,
        stored: 50,
      })
    }
    const [row] =
      await app.sql`select counter from webauthn_credentials where credential_id = ${aliceKey.credentialId}`
    t.equal(row?.counter, '50', 'the stored counter did not move')
    t.equal(
      (await passkeyLogin(anon, aliceKey, { tweaks: { counter: 51 } })).statusCode,
      200,
      'forward again',
    )

    // A clone is told as such before the account's state: a disabled account's clone is still audited.
    await app.sql`update users set disabled = true where id = ${alice.id}`
    await refused(
      await passkeyLogin(anon, aliceKey, { tweaks: { counter: 51 } }),
      'counter_rollback',
      'a disabled account',
      'auth.passkey.cloned',
    )
    await app.sql`update users set disabled = false where id = ${alice.id}`
  })

  await t.test(
    'the counter is also checked by the update that stores it (two racing assertions)',
    async (t) => {
      const [row] = await app.sql<{ id: string }[]>`
      select id from webauthn_credentials where credential_id = ${aliceKey.credentialId}`
      const id = row?.id ?? ''
      t.notOk(await recordUse(app.sql, id, { counter: 40, backedUp: false }), 'backwards')
      t.notOk(await recordUse(app.sql, id, { counter: 51, backedUp: false }), 'equal')
      t.ok(await recordUse(app.sql, id, { counter: 52, backedUp: false }), 'forward')
      aliceKey.counter = 52
      const [other] = await app.sql<{ id: string }[]>`
      select id from webauthn_credentials where credential_id = ${bobKey.credentialId}`
      await app.sql`update webauthn_credentials set counter = 0 where id = ${other?.id ?? ''}`
      t.ok(
        await recordUse(app.sql, other?.id ?? '', { counter: 0, backedUp: false }),
        '0 and 0: no counter kept',
      )
    },
  )

  await t.test('user verification is required; backup eligibility is fixed', async () => {
    await refused(
      await passkeyLogin(anon, aliceKey, { tweaks: { flags: FLAGS.UP } }),
      'user_verification',
      'login without UV',
    )
    const reg = await registerPasskey(alice.inject, new SoftAuthenticator(), {
      tweaks: { flags: FLAGS.UP | FLAGS.AT },
    })
    await refused(reg, 'user_verification', 'register without UV')
    await refused(
      await passkeyLogin(anon, aliceKey, { tweaks: { flags: FLAGS.UP | FLAGS.UV | FLAGS.BE | FLAGS.BS } }),
      'backup_eligibility_changed',
      'a device-bound passkey turned eligible',
    )
  })

  await t.test('garbage inside well-formed fields is a 401, never a 500', async () => {
    const options = await loginOptions()
    const good = aliceKey.get(options)
    const junk = Buffer.from('not json').toString('base64url')
    const withJunk = { ...good, response: { ...good.response, clientDataJSON: junk } }
    await refused(await login(withJunk), 'malformed', 'clientDataJSON not JSON')
    const wrongChallenge = aliceKey.get(options, { challenge: 'short' })
    await refused(await login(wrongChallenge), 'malformed', 'a challenge of another shape')
    const fresh = await loginOptions()
    const noAuthData = aliceKey.get(fresh)
    const bad = { ...noAuthData, response: { ...noAuthData.response, authenticatorData: 'AAAA' } }
    await refused(await login(bad), 'malformed', 'authenticatorData too short')
    const started = await alice.inject({ method: 'POST', url: '/api/auth/passkeys/register/options' })
    const created = new SoftAuthenticator().create(started.json())
    const payload = {
      credential: { ...created, response: { ...created.response, attestationObject: 'oWNmbXQ' } },
    }
    const reg = await alice.inject({ method: 'POST', url: '/api/auth/passkeys/register', payload })
    await refused(reg, 'malformed', 'attestationObject not CBOR')
  })

  t.equal(details.size, 1, 'every failure answers the very same problem')
})

t.test('bad bodies are 400 problems', async (t) => {
  const app = await build(t)
  const user = await signUp(app, 'pkbodies')
  const key = new SoftAuthenticator()
  const options = (
    await app.inject({ method: 'POST', url: '/api/auth/passkeys/login/options', payload: {} })
  ).json()
  const good = key.get(options)
  const bodies: [string, unknown][] = [
    ['no credential', {}],
    ['an extra field', { credential: good, admin: true }],
    ['an extra field in the response', { credential: { ...good, response: { ...good.response, x: 1 } } }],
    ['not base64url', { credential: { ...good, id: 'a+b/c=' } }],
    ['an id too long', { credential: { ...good, id: 'A'.repeat(1365), rawId: 'A'.repeat(1365) } }],
    ['not public-key', { credential: { ...good, type: 'password' } }],
    [
      'clientDataJSON too large',
      { credential: { ...good, response: { ...good.response, clientDataJSON: 'A'.repeat(16_385) } } },
    ],
    ['an array', [good]],
    ['a JSON string', 'credential'],
    ['null', null],
  ]
  for (const [label, payload] of bodies) {
    const res = await app.inject({
      method: 'POST',
      url: '/api/auth/passkeys/login',
      payload: JSON.stringify(payload),
      headers: { 'content-type': 'application/json' },
    })
    expectProblem(t, res, 400, undefined, label)
  }
  const extra = await app.inject({
    method: 'POST',
    url: '/api/auth/passkeys/login/options',
    payload: { username: 'a', x: 1 },
  })
  expectProblem(t, extra, 400, `${P}validation-error`, 'login options: extra field')
  const reg = await user.inject({
    method: 'POST',
    url: '/api/auth/passkeys/register',
    payload: { name: 'x' },
  })
  expectProblem(t, reg, 400, `${P}validation-error`, 'register without a credential')
  const badId = await user.inject({
    method: 'PATCH',
    url: '/api/auth/passkeys/not-a-uuid',
    payload: { name: 'x' },
  })
  expectProblem(t, badId, 400, `${P}validation-error`, 'not a uuid')
})

t.test(
  'login options: the same answer for any name; rate limited per address; expired rows cleared',
  async (t) => {
    const app = await build(t, { env: { PASSKEY_LOGIN_RATE_LIMIT_MAX: '3' } })
    const user = await signUp(app, 'pkenum')
    await registerPasskey(user.inject, new SoftAuthenticator())
    const ask = (payload: object, remoteAddress = '203.0.113.9') =>
      app.inject({ method: 'POST', url: '/api/auth/passkeys/login/options', payload, remoteAddress })
    const known = (await ask({ username: user.username })).json()
    const unknown = (await ask({ username: 'nobody-at-all' })).json()
    const { challenge: _a, ...knownRest } = known
    const { challenge: _b, ...unknownRest } = unknown
    t.same(knownRest, unknownRest, 'no credential ids, nothing that tells the accounts apart')
    t.same(known.allowCredentials, [])
    t.equal(known.userVerification, 'required')
    t.equal((await ask({})).statusCode, 200, 'the third: a discoverable sign-in')
    expectProblem(t, await ask({}), 429, `${P}rate-limited`, 'the fourth from one address')
    t.equal((await ask({}, '203.0.113.10')).statusCode, 200, 'another address has its own budget')

    await app.sql`update webauthn_challenges set expires_at = now() - interval '1 minute'`
    t.equal((await ask({}, '203.0.113.11')).statusCode, 200)
    const [{ n } = { n: -1 }] = await app.sql<
      { n: number }[]
    >`select count(*)::int as n from webauthn_challenges`
    t.equal(n, 1, 'a new challenge clears the expired ones: the table holds what lives within one TTL')
  },
)
