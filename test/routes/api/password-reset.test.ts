import t from 'tap'
import {
  attemptLogin,
  build,
  expectProblem,
  forgotPassword,
  injectAs,
  login,
  nthMail,
  OTHER_PASSWORD,
  RESET_MAIL,
  refreshWith,
  resetLinkToken,
  resetPassword,
  signUp,
  startSmtpServer,
  TEST_PASSWORD,
} from '../../helper.js'

/** Password reset by mail, end to end through a real SMTP server, from the attacker's side (ASVS 5.0 6.4). */

const P = 'urn:bulwark:problem:'
const FAST = { BCRYPT_COST: '4' }
const emailOf = (user: { username: string }) => `${user.username}@example.com`

t.test('forgot → mail → reset: the new password works, every session ends, a notice is mailed', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, ...FAST } })
  const user = await signUp(app, 'reset')
  const second = await login(app, user.username)
  const token = await resetLinkToken(app, smtp, emailOf(user))
  const mail = await nthMail(smtp, emailOf(user), RESET_MAIL, 0)
  t.match(mail.text, /\/reset-password#token=/, 'the token is in the fragment of the link')
  t.notMatch(mail.text, /\?[^#\s]*token=/, 'never in a query string')

  const res = await resetPassword(app, { token, newPassword: OTHER_PASSWORD })
  t.equal(res.statusCode, 204, res.body)
  t.same(
    res.cookies.map((c) => [c.name, c.maxAge]),
    [
      ['access_token', 0],
      ['refresh_token', 0],
    ],
    'the auth cookies are cleared',
  )
  expectProblem(t, await attemptLogin(app, user.username, TEST_PASSWORD), 401, `${P}invalid-credentials`)
  const fresh = await login(app, user.username, OTHER_PASSWORD)
  for (const [name, session] of [
    ['first', user],
    ['second', second],
  ] as const) {
    t.equal((await refreshWith(app, session.refreshToken)).statusCode, 401, `${name} refresh token is dead`)
    const me = await injectAs(app, session.accessToken)('/api/users/me')
    t.equal(me.statusCode, 401, `${name} access token is dead`)
  }
  const me = await injectAs(app, fresh.accessToken)('/api/users/me')
  t.equal(me.json().user.emailVerified, true, 'following the link verified the address')

  const notice = await smtp.waitForMail(emailOf(user), /Your password was reset/)
  t.match(notice.text, /every session was signed out/)
  t.notMatch(notice.text, /#token=/, 'the notice carries no link token')
  expectProblem(
    t,
    await resetPassword(app, { token, newPassword: 'Other-Lantern-Pebble-90' }),
    400,
    `${P}invalid-email-token`,
  )

  const [event] = await app.sql<{ detail: Record<string, unknown> }[]>`
    select detail from audit_events where event = 'auth.password.reset' and user_id = ${user.id}
  `
  t.same(event?.detail, { sessionsRevoked: 2, emailVerifiedNow: true }, 'audited with the sessions it ended')
})

t.test('a link dies when it expires, and when a newer one is asked for', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, ...FAST } })
  const user = await signUp(app, 'expiry')
  const expired = await resetLinkToken(app, smtp, emailOf(user))
  await app.sql`update email_tokens set expires_at = now() - interval '1 second' where user_id = ${user.id}`
  const late = await resetPassword(app, { token: expired, newPassword: OTHER_PASSWORD })
  const body = expectProblem(t, late, 400, `${P}invalid-email-token`)
  t.equal(body.detail, 'The link is invalid, expired or already used.')

  const older = await resetLinkToken(app, smtp, emailOf(user))
  const newer = await resetLinkToken(app, smtp, emailOf(user))
  t.not(older, newer)
  const stale = await resetPassword(app, { token: older, newPassword: OTHER_PASSWORD })
  t.same(
    stale.json(),
    { ...body, instance: stale.json().instance, requestId: stale.json().requestId },
    'one answer',
  )
  t.equal((await resetPassword(app, { token: newer, newPassword: OTHER_PASSWORD })).statusCode, 204)
  t.equal((await attemptLogin(app, user.username, OTHER_PASSWORD)).statusCode, 200)
})

t.test('a disabled account gets no mail, and a link it had is refused', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, ...FAST } })
  const user = await signUp(app, 'disabled')
  const token = await resetLinkToken(app, smtp, emailOf(user))
  await app.sql`update users set disabled = true where id = ${user.id}`
  t.equal((await forgotPassword(app, emailOf(user))).statusCode, 202, 'the same 202')
  await app.backgroundTasks.settled()
  const res = await resetPassword(app, { token, newPassword: OTHER_PASSWORD })
  expectProblem(t, res, 400, `${P}invalid-email-token`)
  const [row] = await app.sql<{ n: number }[]>`
    select count(*)::int as n from outbox where user_id = ${user.id} and template = 'password-reset'
  `
  t.equal(row?.n, 1, 'no second reset mail was queued')
})

t.test('MAIL_DISABLED=true: both endpoints answer 501 mail-disabled', async (t) => {
  const app = await build(t, { env: { MAIL_DISABLED: 'true', ...FAST } })
  const forgot = await forgotPassword(app, 'someone@example.com')
  expectProblem(t, forgot, 501, `${P}mail-disabled`)
  const token = 'A'.repeat(43)
  expectProblem(t, await resetPassword(app, { token, newPassword: OTHER_PASSWORD }), 501, `${P}mail-disabled`)
})
