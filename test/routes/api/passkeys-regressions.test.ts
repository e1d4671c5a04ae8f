import { randomBytes } from 'node:crypto'
import t from 'tap'
import { build, expectProblem, signUp } from '../../helper.js'
import { SoftAuthenticator } from '../../support/passkey-authenticator.js'

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
