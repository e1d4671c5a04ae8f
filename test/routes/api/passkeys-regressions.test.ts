import { createHash, randomBytes } from 'node:crypto'
import t from 'tap'
import {
  build,
  enrolTotp,
  expectProblem,
  holdInTransaction,
  injectAs,
  signUp,
  startSmtpServer,
  waitForLockWaiter,
} from '../../helper.js'
import {
  anonymous,
  cbor,
  FLAGS,
  passkeyLogin,
  registerPasskey,
  SoftAuthenticator,
} from '../../support/passkey-authenticator.js'

/** Passkeys after a hostile review: one test per defect found (named after it), and the guards added. */

const P = 'urn:bulwark:problem:'
const INVALID = `${P}invalid-passkey`

t.test('a credential id outside 16–1023 bytes is a refused ceremony, not a 500', async (t) => {
  const app = await build(t)
  const user = await signUp(app, 'pkidlen')
  for (const length of [1, 15, 1024, 2000]) {
    const started = await user.inject({ method: 'POST', url: '/api/auth/passkeys/register/options' })
    const created = new SoftAuthenticator().create(started.json(), { credentialId: randomBytes(length) })
    // The id fields are bounded by the schema; the one inside the attestation object only by the service.
    const id = randomBytes(32).toString('base64url')
    const payload = { credential: { ...created, id, rawId: id } }
    const res = await user.inject({ method: 'POST', url: '/api/auth/passkeys/register', payload })
    expectProblem(t, res, 401, INVALID, `a credential id of ${length} bytes`)
  }
  const [{ n } = { n: -1 }] = await app.sql<{ n: number }[]>`
    select count(*)::int as n from webauthn_credentials where user_id = ${user.id}`
  t.equal(n, 0, 'nothing stored')
})

t.test('a ceremony run in a cross-origin iframe (crossOrigin: true) is refused', async (t) => {
  const app = await build(t)
  const anon = anonymous(app)
  const user = await signUp(app, 'pkframe')
  const key = new SoftAuthenticator()
  t.equal((await registerPasskey(user.inject, key)).statusCode, 201)
  // WebAuthn L3 §7.2 step 13 / §7.1 step 10: we never expect a ceremony inside another site's iframe.
  expectProblem(t, await passkeyLogin(anon, key, { tweaks: { crossOrigin: true } }), 401, INVALID, 'login')
  const reg = await registerPasskey(user.inject, new SoftAuthenticator(), { tweaks: { crossOrigin: true } })
  expectProblem(t, reg, 401, INVALID, 'register')
  const [row] = await app.sql<{ reason: string }[]>`
    select detail->>'reason' as reason from audit_events where event = 'auth.passkey.failed'
    order by created_at desc limit 1`
  t.equal(row?.reason, 'cross_origin', 'audited with its reason')
  t.equal((await passkeyLogin(anon, key)).statusCode, 200, 'crossOrigin false still signs in')
})

t.test('origins are compared exactly: no prefix, suffix, scheme, port or case tricks', async (t) => {
  const app = await build(t)
  const anon = anonymous(app)
  const user = await signUp(app, 'pkorigin')
  const key = new SoftAuthenticator()
  t.equal((await registerPasskey(user.inject, key)).statusCode, 201)
  const tricks = [
    'http://localhost:3000/',
    'https://localhost:3000',
    'http://localhost:30000',
    'http://localhost',
    'http://localhost:3000.evil.example',
    'http://evil.localhost:3000',
    'HTTP://LOCALHOST:3000',
    'null',
  ]
  for (const origin of tricks) {
    expectProblem(t, await passkeyLogin(anon, key, { tweaks: { origin } }), 401, INVALID, origin)
  }
})

t.test('malformed authenticator data and attestation objects are 401, never 500', async (t) => {
  const app = await build(t)
  const anon = anonymous(app)
  const user = await signUp(app, 'pkfuzz')
  const key = new SoftAuthenticator()
  t.equal((await registerPasskey(user.inject, key)).statusCode, 201)
  const sha = (s: string) => createHash('sha256').update(s).digest()
  const rpHash = sha('localhost')
  const authDatas = [
    Buffer.concat([rpHash, Buffer.from([FLAGS.UP | FLAGS.UV | FLAGS.AT]), Buffer.alloc(4)]),
    Buffer.concat([rpHash, Buffer.from([FLAGS.UP | FLAGS.UV | 0x80]), Buffer.alloc(4), cbor({ a: 1 })]),
    Buffer.concat([rpHash, Buffer.from([FLAGS.UP | FLAGS.UV | FLAGS.BS]), Buffer.alloc(4)]),
    Buffer.concat([rpHash, Buffer.from([0xff]), Buffer.alloc(4), Buffer.from([0xff, 0xff, 0xff])]),
  ]
  for (const [i, authData] of authDatas.entries()) {
    const options = (
      await anon({ method: 'POST', url: '/api/auth/passkeys/login/options', payload: {} })
    ).json()
    const good = key.get(options)
    const credential = {
      ...good,
      response: { ...good.response, authenticatorData: authData.toString('base64url') },
    }
    const res = await anon({ method: 'POST', url: '/api/auth/passkeys/login', payload: { credential } })
    expectProblem(t, res, 401, INVALID, `authenticatorData #${i}`)
  }
  const attestations = [
    cbor({ fmt: 'none', attStmt: {}, authData: authDatas[0] as Buffer }),
    cbor({ fmt: 'none', attStmt: { x: 1 }, authData: authDatas[0] as Buffer }),
    cbor({ fmt: 'packed', attStmt: {}, authData: authDatas[0] as Buffer }),
    cbor({ fmt: 1, attStmt: 'x', authData: 'y' }),
    cbor('just a string'),
    Buffer.from([0xbf, 0xff, 0x9f]),
    Buffer.from([0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
  ]
  for (const [i, attestationObject] of attestations.entries()) {
    const started = await user.inject({ method: 'POST', url: '/api/auth/passkeys/register/options' })
    const created = new SoftAuthenticator().create(started.json())
    const credential = {
      ...created,
      response: { ...created.response, attestationObject: attestationObject.toString('base64url') },
    }
    const res = await user.inject({
      method: 'POST',
      url: '/api/auth/passkeys/register',
      payload: { credential },
    })
    expectProblem(t, res, 401, INVALID, `attestationObject #${i}`)
  }
})

t.test('removing TOTP keeps a passkey session two-factor (amr is not reset to pwd)', async (t) => {
  const app = await build(t, { env: { MFA_REQUIRED_ROLES: 'admin' } })
  const admin = await signUp(app, 'pkamr', { role: 'admin' })
  const key = new SoftAuthenticator()
  t.equal((await registerPasskey(admin.inject, key)).statusCode, 201)
  await enrolTotp(app, admin)
  const signedIn = await passkeyLogin(anonymous(app), key)
  t.equal(signedIn.statusCode, 200)
  const session = injectAs(app, signedIn.json().accessToken)
  t.equal((await session('/api/admin/users')).statusCode, 200, 'a passkey session is two-factor')
  t.equal((await session({ method: 'DELETE', url: '/api/auth/mfa/totp' })).statusCode, 204)
  t.equal((await session('/api/admin/users')).statusCode, 200, 'still two-factor: the passkey was used')
  const [row] = await app.sql<{ amr: string[] }[]>`
    select amr from sessions where user_id = ${admin.id} and revoked_at is null`
  t.same(row?.amr, ['hwk', 'mfa'], 'the session still says how it was authenticated')
})

t.test(
  'two assertions racing past the counter check: the storing update lets only one sign in',
  async (t) => {
    const app = await build(t)
    const anon = anonymous(app)
    const user = await signUp(app, 'pkrace')
    const key = new SoftAuthenticator()
    t.equal((await registerPasskey(user.inject, key)).statusCode, 201)
    t.equal((await passkeyLogin(anon, key)).statusCode, 200, 'stored counter 1')
    // Both verify against counter 1, then wait for the user row; released, they store counter 2 in turn.
    const hold = await holdInTransaction(
      app.sql,
      (tx) => tx`select 1 from users where id = ${user.id} for update`,
    )
    const racing = [1, 2].map(() => passkeyLogin(anon, key, { tweaks: { counter: 2 } }))
    await waitForLockWaiter(app, 5000, 2)
    await hold.release()
    const statuses = (await Promise.all(racing)).map((res) => res.statusCode).sort()
    t.same(statuses, [200, 401], 'one signs in, the other is refused')
    const [row] = await app.sql<{ n: number }[]>`
    select count(*)::int as n from audit_events where user_id = ${user.id} and event = 'auth.passkey.cloned'`
    t.equal(row?.n, 1, 'the loser is audited as a clone')
  },
)

t.test('assertions are rate limited per address too, not only the options', async (t) => {
  const app = await build(t, { env: { PASSKEY_LOGIN_RATE_LIMIT_MAX: '2' } })
  const key = new SoftAuthenticator()
  const credential = key.get({ challenge: randomBytes(32).toString('base64url') })
  const send = (remoteAddress: string) =>
    app.inject({ method: 'POST', url: '/api/auth/passkeys/login', payload: { credential }, remoteAddress })
  for (const n of [1, 2]) expectProblem(t, await send('203.0.113.20'), 401, INVALID, `assertion ${n}`)
  expectProblem(t, await send('203.0.113.20'), 429, `${P}rate-limited`, 'the third from one address')
  expectProblem(t, await send('203.0.113.21'), 401, INVALID, 'another address has its own budget')
})

t.test('adding or removing a passkey mails the owner a notice (a silent new sign-in method)', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: smtp.env })
  const user = await signUp(app, 'pknotice')
  const address = `${user.username}@example.com`
  const created = await registerPasskey(user.inject, new SoftAuthenticator(), { name: 'Work <b>laptop</b>' })
  t.equal(created.statusCode, 201)
  const added = await smtp.waitForMail(address, /A passkey was added/)
  t.match(added.text, /"Work <b>laptop<\/b>"/)
  t.notMatch(added.html, /<b>laptop/, 'the name is escaped in HTML')
  const removed = await user.inject({ method: 'DELETE', url: `/api/auth/passkeys/${created.json().id}` })
  t.equal(removed.statusCode, 204)
  await smtp.waitForMail(address, /A passkey was removed/)
  const refused = await registerPasskey(user.inject, new SoftAuthenticator(), { tweaks: { flags: FLAGS.UP } })
  t.equal(refused.statusCode, 401)
  const rows = await app.sql<{ template: string }[]>`
    select template from outbox where user_id = ${user.id} and template like 'passkey-%' order by created_at, id`
  const templates = rows.map((r) => r.template)
  t.same(templates, ['passkey-added', 'passkey-removed'], 'a refused registration queues nothing')
})
