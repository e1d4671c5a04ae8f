import t from 'tap'
import {
  type App,
  attemptLogin,
  build,
  enrolTotp,
  expectProblem,
  login,
  OTHER_PASSWORD,
  signUp,
  startSmtpServer,
  TEST_PASSWORD,
  totpCode,
  verifyMfa,
  waitUntil,
} from '../../helper.js'

/**
 * Security notices (OWASP ASVS 5.0 6.3.5, 6.3.7), end to end: an action through the API, then the
 * mail the in-process SMTP server received at the account's address. A refused action queues nothing.
 */

const P = 'urn:bulwark:problem:'

/** The notices queued for a user so far, oldest first (sent or not); not registration's verification link. */
async function queued(app: App, userId: string): Promise<string[]> {
  const rows = await app.sql<{ template: string }[]>`
    select template from outbox where user_id = ${userId} and template <> 'verify-email'
    order by created_at, id
  `
  return rows.map((r) => r.template)
}

const emailOf = (username: string) => `${username}@example.com`

t.test('a password change mails a notice; a wrong current password queues nothing', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: smtp.env })
  const user = await signUp(app, 'pwnotice')
  const change = (currentPassword: string) =>
    user.inject({
      method: 'PUT',
      url: '/api/users/me/password',
      payload: { currentPassword, newPassword: OTHER_PASSWORD },
    })

  expectProblem(t, await change('Wrong-Password-Guess-99'), 403, `${P}invalid-current-password`)
  t.same(await queued(app, user.id), [], 'a refused change queues no notice')

  t.equal((await change(TEST_PASSWORD)).statusCode, 204)
  const mail = await smtp.waitForMail(emailOf(user.username), /password was changed/)
  t.match(mail.text, `Hello ${user.username},`)
  t.match(mail.text, /your other sessions were signed out/)
  t.same(await queued(app, user.id), ['password-changed'], 'exactly one notice')
})

t.test('two-factor on and off each mail a notice; a failed confirmation queues nothing', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: smtp.env })
  const user = await signUp(app, 'mfanotice')
  const started = await user.inject({ method: 'POST', url: '/api/auth/mfa/totp' })
  t.equal(started.statusCode, 201)
  const wrong = await user.inject({
    method: 'POST',
    url: '/api/auth/mfa/totp/confirm',
    payload: { code: '000000' },
  })
  expectProblem(t, wrong, 401, `${P}invalid-mfa-code`)
  t.same(await queued(app, user.id), [], 'a wrong code turns nothing on and tells no one')

  const { secret } = started.json<{ secret: string }>()
  const confirmed = await user.inject({
    method: 'POST',
    url: '/api/auth/mfa/totp/confirm',
    payload: { code: totpCode(secret) },
  })
  t.equal(confirmed.statusCode, 200)
  const on = await smtp.waitForMail(emailOf(user.username), /Two-factor authentication is on/)
  t.match(on.text, /was turned on for your account/)

  const off = await user.inject({ method: 'DELETE', url: '/api/auth/mfa/totp' })
  t.equal(off.statusCode, 204)
  const offMail = await smtp.waitForMail(emailOf(user.username), /Two-factor authentication is off/)
  t.match(offMail.text, /was turned off for your account/)
  t.same(await queued(app, user.id), ['mfa-enabled', 'mfa-disabled'])
})

t.test('a recovery code used at sign-in or step-up mails the count left; a wrong one nothing', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: smtp.env })
  const user = await signUp(app, 'recnotice')
  const { recoveryCodes } = await enrolTotp(app, user)
  const before = (await queued(app, user.id)).length

  const first = (await attemptLogin(app, user.username)).json<{ mfaToken: string }>()
  const wrong = await verifyMfa(app, first.mfaToken, 'aaaaaa-aaaaaa-aaaaaa-aaaaaa')
  expectProblem(t, wrong, 401, `${P}invalid-mfa-code`)
  t.equal((await queued(app, user.id)).length, before, 'a wrong recovery code is no notice')

  const signedIn = await verifyMfa(app, first.mfaToken, recoveryCodes[0] ?? '')
  t.equal(signedIn.statusCode, 200)
  const mail = await smtp.waitForMail(emailOf(user.username), /recovery code was used/)
  t.match(mail.text, /9 code\(s\) are left\./)

  // Step-up with the second code, in the session it just made.
  const accessToken = signedIn.json<{ accessToken: string }>().accessToken
  const stepUp = await app.inject({
    method: 'POST',
    url: '/api/auth/reauthenticate',
    headers: { authorization: `Bearer ${accessToken}` },
    payload: { password: TEST_PASSWORD, code: recoveryCodes[1] },
  })
  t.equal(stepUp.statusCode, 200)
  await smtp.waitForMail(emailOf(user.username), /recovery code was used/)
  await waitUntil('the step-up notice arrives', () =>
    smtp.mails.some((m) => /8 code\(s\) are left\./.test(m.text)),
  )
  const notices = (await queued(app, user.id)).filter((tpl) => tpl === 'recovery-code-used')
  t.equal(notices.length, 2, 'one notice per code used')
})

t.test(
  'a sign-in from a new device mails time, address and user agent (escaped in HTML); not the first sign-in, not with the device cookie',
  async (t) => {
    const smtp = await startSmtpServer(t)
    const app = await build(t, { env: smtp.env })
    const user = await signUp(app, 'devnotice') // the first sign-in, right after registration
    t.same(await queued(app, user.id), [], 'the first sign-in is no news')

    const deviceCookie = user.cookies.device ?? ''
    t.ok(deviceCookie, 'the first sign-in set a device cookie')
    const known = await app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { username: user.username, password: TEST_PASSWORD },
      cookies: { device: deviceCookie },
    })
    t.equal(known.statusCode, 200)
    t.same(await queued(app, user.id), [], 'a known device is no news')

    const hostile = '<img src=x onerror=alert(1)>'
    const stranger = await app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { username: user.username, password: TEST_PASSWORD },
      headers: { 'user-agent': hostile },
      remoteAddress: '203.0.113.7',
    })
    t.equal(stranger.statusCode, 200)
    const mail = await smtp.waitForMail(emailOf(user.username), /New sign-in/)
    t.match(mail.text, /Address: 203\.0\.113\.7/)
    t.match(mail.text, `Browser: ${hostile}`, 'plain text carries the user agent as sent')
    t.match(mail.text, /Time: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/)
    t.notMatch(mail.html, /<img/i, 'no markup from the client reaches the HTML part')
    t.match(mail.html, '&lt;img src=x onerror=alert(1)&gt;', 'it is escaped')

    // A device cookie of another account, or one forged, is no device of this one.
    const other = await signUp(app, 'devother')
    const borrowed = await app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { username: user.username, password: TEST_PASSWORD },
      cookies: { device: other.cookies.device ?? '' },
    })
    t.equal(borrowed.statusCode, 200)
    t.same(await queued(app, user.id), ['new-sign-in', 'new-sign-in'], 'another account’s cookie is news')
  },
)

t.test('a new device completing a two-factor sign-in is told too', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: smtp.env })
  const user = await signUp(app, 'dev2fa')
  const { secret } = await enrolTotp(app, user)
  const step = (await attemptLogin(app, user.username)).json<{ mfaToken: string }>()
  t.same(await queued(app, user.id), ['mfa-enabled'], 'the password step alone is no sign-in yet')
  t.equal((await verifyMfa(app, step.mfaToken, totpCode(secret))).statusCode, 200)
  await smtp.waitForMail(emailOf(user.username), /New sign-in/)
  t.same(await queued(app, user.id), ['mfa-enabled', 'new-sign-in'])
})

t.test('an admin change that signs a user out mails them; one that signs no one out does not', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: smtp.env })
  const admin = await signUp(app, 'noticeadm', { role: 'admin' })
  const patch = (id: string, payload: object) =>
    admin.inject({ method: 'PATCH', url: `/api/admin/users/${id}`, payload })

  const promoted = await signUp(app, 'promoted')
  t.equal((await patch(promoted.id, { role: 'admin' })).statusCode, 200)
  const signedOut = await smtp.waitForMail(emailOf(promoted.username), /You were signed out/)
  t.match(signedOut.text, /changed the role of your account/)

  const disabled = await signUp(app, 'disabled')
  t.equal((await patch(disabled.id, { disabled: true })).statusCode, 200)
  const off = await smtp.waitForMail(emailOf(disabled.username), /Your account was disabled/)
  t.match(off.text, /disabled your account and signed out every session/)
  // Enabling again signs no one out (a disabled account has no session left): no mail.
  t.equal((await patch(disabled.id, { disabled: false })).statusCode, 200)
  t.same(await queued(app, disabled.id), ['sessions-revoked'])

  const idle = await signUp(app, 'idle')
  const logout = await idle.inject({ method: 'POST', url: '/api/auth/logout' })
  t.equal(logout.statusCode, 204)
  t.equal((await patch(idle.id, { role: 'admin' })).statusCode, 200)
  t.same(await queued(app, idle.id), [], 'no session was live: nothing to tell')
})

t.test('with MAIL_DISABLED=true the actions work and queue nothing', async (t) => {
  const app = await build(t, { env: { MAIL_DISABLED: 'true' } })
  const user = await signUp(app, 'nomail')
  await login(app, user.username)
  const change = await user.inject({
    method: 'PUT',
    url: '/api/users/me/password',
    payload: { currentPassword: TEST_PASSWORD, newPassword: OTHER_PASSWORD },
  })
  t.equal(change.statusCode, 204)
  t.same(await queued(app, user.id), [])
})
