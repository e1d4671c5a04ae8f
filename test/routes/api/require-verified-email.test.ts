import { randomUUID } from 'node:crypto'
import t from 'tap'
import { insertToken } from '../../../repositories/email-tokens.js'
import type { Problem } from '../../../schemas/common.js'
import { newOpaqueToken } from '../../../services/opaque-tokens.js'
import {
  attemptLogin,
  build,
  expectProblem,
  type InjectResponse,
  linkToken,
  register,
  startSmtpServer,
  uniqueName,
  waitForLockWaiter,
  waitForMails,
} from '../../helper.js'

/** Issue 15: REQUIRE_VERIFIED_EMAIL=true refuses an unverified account after its password, never before. */

const P = 'urn:bulwark:problem:'
const CONFIRM = /Confirm your email address/

t.test(
  'an unverified account: 403 after the right password, with a fresh link; 401 for a wrong one',
  async (t) => {
    const smtp = await startSmtpServer(t)
    const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4', REQUIRE_VERIFIED_EMAIL: 'true' } })
    const username = uniqueName('strict')
    const email = `${username}@example.com`
    const user = await register(app, username)
    await waitForMails(smtp, email, CONFIRM, 1)

    const refused = await attemptLogin(app, username)
    const body = expectProblem(t, refused, 403, `${P}email-not-verified`)
    t.match(body.detail, /new confirmation link was sent/, 'the detail says a new link is on its way')
    t.same(refused.cookies, [], 'no cookie')
    t.notOk('accessToken' in body || 'mfaToken' in body, 'no token of any kind')
    const [sessions] = await app.sql`select count(*)::int as n from sessions where user_id = ${user.id}`
    t.equal(sessions?.n, 0, 'no session')
    const [audit] = await app.sql`select detail->>'reason' as reason from audit_events
    where event = 'auth.login.failure' and user_id = ${user.id}`
    t.equal(audit?.reason, 'email_not_verified')

    // The link of the registration may have expired: the refusal mailed a new one, which replaces it.
    const links = (await waitForMails(smtp, email, CONFIRM, 2)).map((m) => linkToken(m))
    const verify = (token: string | undefined) =>
      app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token } })
    expectProblem(t, await verify(links[0]), 400, `${P}invalid-email-token`, 'the older link died')

    // A wrong password is the 401 of any wrong password: the 403 is no oracle for the address's state.
    const wrong = await attemptLogin(app, username, 'Not-The-Password-123')
    const unknown = await attemptLogin(app, uniqueName('ghost'), 'Not-The-Password-123')
    for (const res of [wrong, unknown]) expectProblem(t, res, 401, `${P}invalid-credentials`)
    t.equal(wrong.json<Problem>().detail, unknown.json<Problem>().detail)
    t.equal(smtp.mails.length, 2, 'and it mails nothing')

    t.equal((await verify(links[1])).statusCode, 204)
    const signedIn = await attemptLogin(app, email)
    t.equal(signedIn.statusCode, 200, 'a verified account signs in')
    t.equal(signedIn.json<{ user: { emailVerified: boolean } }>().user.emailVerified, true)
  },
)

t.test('the refusal mails within the account’s budget, and answers the same once it is spent', async (t) => {
  const smtp = await startSmtpServer(t)
  const env = { ...smtp.env, BCRYPT_COST: '4', REQUIRE_VERIFIED_EMAIL: 'true', MAIL_RATE_LIMIT_MAX: '2' }
  const app = await build(t, { env })
  const username = uniqueName('spent')
  await register(app, username)
  const answers = [await attemptLogin(app, username), await attemptLogin(app, username)]
  t.same(
    answers.map((r) => r.json<Problem>().type),
    [`${P}email-not-verified`, `${P}email-not-verified`],
  )
  await waitForMails(smtp, `${username}@example.com`, CONFIRM, 2)
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(smtp.mails.length, 2, 'registration’s link and one more: the budget of 2 is spent')
})

t.test('deadlock: a refused sign-in while an email change is confirmed gives no 5xx', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4', REQUIRE_VERIFIED_EMAIL: 'true' } })
  const username = uniqueName('order')
  const user = await register(app, username)
  await waitForMails(smtp, `${username}@example.com`, CONFIRM, 1)
  const change = newOpaqueToken()
  const next = `${uniqueName('next')}@example.com`
  await insertToken(app.sql, app.cipher, {
    ...{ id: randomUUID(), userId: user.id, purpose: 'email_change' as const },
    ...{ hash: change.hash, email: next, ttlSeconds: 600 },
  })
  let pending: Promise<InjectResponse[]> | undefined
  // The test holds the live verification link: the refused sign-in (which replaces it) queues on it
  // first, then the change (which kills it) behind; released, each holds what the other wants.
  await app.sql.begin(async (tx) => {
    await tx`select 1 from email_tokens where user_id = ${user.id} and purpose = 'verify_email' for update`
    const refused = attemptLogin(app, username)
    await waitForLockWaiter(app, 5000, 1)
    const payload = { token: change.token }
    const confirmed = app.inject({ method: 'POST', url: '/api/auth/verify-email', payload })
    await waitForLockWaiter(app, 5000, 2)
    pending = Promise.all([refused, confirmed])
  })
  const [refused, confirmed] = await (pending as Promise<InjectResponse[]>)
  t.equal(refused?.statusCode, 403, `the sign-in is refused as unverified (${refused?.body})`)
  t.equal(confirmed?.statusCode, 204, `the change is made (${confirmed?.body})`)
})
