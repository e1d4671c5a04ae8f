import t from 'tap'
import { build, expectProblem, type InjectResponse, signUp, waitForLockWaiter } from '../../helper.js'

/** API keys against concurrent revocations (hostile review of issue 16). */

t.test(
  'a key created while its session is revoked (owner disabled, password changed) does not outlive it',
  async (t) => {
    const app = await build(t, { env: { BCRYPT_COST: '4' } })
    const user = await signUp(app, 'krace')
    let pending: Promise<InjectResponse> | undefined
    await app.sql.begin(async (tx) => {
      // As an admin's disable (or a password change) would: the user's row is held while the
      // attacker's create, past its authentication, waits for it; then every session and key ends.
      await tx`select 1 from users where id = ${user.id} for update`
      pending = user.inject({
        method: 'POST',
        url: '/api/auth/api-keys',
        payload: { name: 'survivor', scopes: ['profile:read'] },
      })
      await waitForLockWaiter(app)
      await tx`update users set disabled = true where id = ${user.id}`
      await tx`update sessions set revoked_at = now(), revoked_reason = 'admin_change' where user_id = ${user.id}`
      await tx`update api_keys set revoked_at = now(), revoked_reason = 'owner_disabled' where user_id = ${user.id}`
    })
    const res = await (pending as Promise<InjectResponse>)
    expectProblem(
      t,
      res,
      401,
      'urn:bulwark:problem:invalid-token',
      'the session ended before the key was made',
    )
    const [live] = await app.sql<{ n: number }[]>`
      select count(*)::int as n from api_keys where user_id = ${user.id} and revoked_at is null`
    t.equal(live?.n, 0, 'no live key survives the revocation (re-enabling the owner would revive it)')
  },
)
