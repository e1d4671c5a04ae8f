import { randomBytes } from 'node:crypto'
import t from 'tap'
import { build, expectProblem, signUp } from '../../helper.js'
import {
  anonymous,
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
