import { randomUUID } from 'node:crypto'
import t from 'tap'
import { insertToken } from '../../../repositories/email-tokens.js'
import { newOpaqueToken } from '../../../services/opaque-tokens.js'
import {
  type App,
  attemptLogin,
  build,
  expectProblem,
  injectAs,
  linkToken,
  login,
  OTHER_PASSWORD,
  register,
  resetLinkToken,
  resetPassword,
  type SignedInUser,
  signUp,
  startSmtpServer,
  TEST_PASSWORD,
  uniqueName,
  waitForMails,
} from '../../helper.js'

/** Issue 15: PUT /api/users/me/email, confirmed through the link mailed to the new address. */

const P = 'urn:bulwark:problem:'
const emailOf = (username: string) => `${username}@example.com`
const change = (user: Pick<SignedInUser, 'inject'>, email: string) =>
  user.inject({ method: 'PUT', url: '/api/users/me/email', payload: { email } })
const verify = (app: App, token: string) =>
  app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token } })
const emailRow = async (app: App, id: string) =>
  (await app.sql<{ email: string }[]>`select email from users where id = ${id}`)[0]?.email

t.test(
  'the change happens on the link: new address verified, old one told, sign-in by the new one',
  async (t) => {
    const smtp = await startSmtpServer(t)
    const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4' } })
    const user = await signUp(app, 'mover')
    const oldEmail = emailOf(user.username)
    const registered = await waitForMails(smtp, oldEmail, /Confirm your email address/, 1)
    const reset = newOpaqueToken()
    const resetToken = { id: randomUUID(), userId: user.id, purpose: 'password_reset' as const }
    await insertToken(app.sql, app.cipher, {
      ...resetToken,
      hash: reset.hash,
      email: oldEmail,
      ttlSeconds: 600,
    })

    const next = `${uniqueName('new')}@Example.com`
    const asked = await change(user, next)
    t.equal(asked.statusCode, 202, asked.body)
    t.same(asked.json(), { expiresIn: 86_400 }, 'how long the link works')
    const stored = await emailRow(app, user.id)
    t.equal(
      (await user.inject('/api/users/me')).json().user.email,
      oldEmail,
      'nothing changes before the link',
    )

    const [confirm] = await waitForMails(smtp, next, /Confirm your new email address/, 1)
    t.match(confirm?.text, /\/verify-email#token=/)
    const done = await verify(app, linkToken(confirm ?? { text: '' }))
    t.equal(done.statusCode, 204, done.body)

    const me = (await user.inject('/api/users/me')).json().user
    t.same([me.email, me.emailVerified], [next.toLowerCase(), true], 'the new address, verified')
    t.not(await emailRow(app, user.id), stored, 'stored anew (encrypted for the new value)')
    const [notice] = await waitForMails(smtp, oldEmail, /Your email address was changed/, 1)
    const masked = `${next[0]}***@example.com`
    t.ok(notice?.text.includes(masked), `the old address sees the new one masked (${masked})`)
    t.notOk(notice?.text.includes(next.toLowerCase()), 'and not in full')

    t.equal((await attemptLogin(app, next)).statusCode, 200, 'sign-in by the new address')
    expectProblem(t, await attemptLogin(app, oldEmail), 401, `${P}invalid-credentials`, 'not by the old one')
    // Links sent to the old address die with it: the unused verification and a reset link.
    const left =
      await app.sql`select purpose from email_tokens where user_id = ${user.id} and used_at is null`
    t.same(left, [], 'no live token of the old address')
    expectProblem(
      t,
      await verify(app, linkToken(registered[0] ?? { text: '' })),
      400,
      `${P}invalid-email-token`,
    )
    const [audit] = await app.sql`select count(*)::int as n from audit_events
    where user_id = ${user.id} and event in ('auth.email.change_requested', 'auth.email.changed')`
    t.equal(audit?.n, 2, 'requested and changed are audited')
  },
)

t.test('an address of another account: the same 202, its owner told, nothing changes', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4' } })
  const owner = await register(app, uniqueName('owner'))
  const user = await signUp(app, 'taker')
  const free = await change(user, `${uniqueName('free')}@example.com`)
  const taken = await change(user, owner.email.toUpperCase())
  t.same([taken.statusCode, taken.body], [free.statusCode, free.body], 'answered like a free address')
  t.same(Object.keys(taken.headers).sort(), Object.keys(free.headers).sort(), 'with the same headers')

  await waitForMails(smtp, owner.email, /Someone tried to use your address/, 1)
  const toOwner = smtp.mails.filter((m) => m.to.includes(owner.email))
  t.notOk(
    toOwner.some((m) => /Confirm your new/.test(m.subject)),
    'no link to take the address over',
  )
  const me = (await user.inject('/api/users/me')).json().user
  t.equal(me.email, emailOf(user.username), 'the requester keeps their address')
  const [tokens] = await app.sql`select count(*)::int as n from email_tokens
    where user_id = ${user.id} and purpose = 'email_change' and used_at is null`
  t.equal(tokens?.n, 0, 'the taken address got no link, and killed the free one’s as a newer request does')
})

t.test('refusals: stale session, own address, signed out, a taken address at confirmation', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4' } })
  const user = await signUp(app, 'careful')
  expectProblem(
    t,
    await app.inject({ method: 'PUT', url: '/api/users/me/email', payload: { email: 'a@example.com' } }),
    401,
    `${P}unauthenticated`,
  )
  const own = expectProblem(
    t,
    await change(user, emailOf(user.username).toUpperCase()),
    400,
    `${P}validation-error`,
  )
  t.match(own.errors, [{ path: 'body.email', message: 'is already your email address' }])
  expectProblem(t, await change(user, 'not-an-address'), 400, `${P}validation-error`)

  // A session authenticated long ago must prove itself again first (OWASP ASVS 5.0 7.5.3).
  await app.sql`update sessions set auth_time = now() - interval '1 hour' where user_id = ${user.id}`
  const stale = await change(user, `${uniqueName('late')}@example.com`)
  expectProblem(t, stale, 401, `${P}reauthentication-required`)
  t.match(stale.headers['www-authenticate'], /insufficient_user_authentication/)
  const reauth = await user.inject({
    method: 'POST',
    url: '/api/auth/reauthenticate',
    payload: { password: TEST_PASSWORD },
  })
  const fresh = { inject: injectAs(app, reauth.json<{ accessToken: string }>().accessToken) }
  const next = `${uniqueName('race')}@example.com`
  t.equal((await change(fresh, next)).statusCode, 202, 'accepted after re-authentication')

  // Someone registers the address before the link is followed: the unique index decides.
  const [mail] = await waitForMails(smtp, next, /Confirm your new email address/, 1)
  await register(app, uniqueName('first'), undefined, { email: next })
  expectProblem(t, await verify(app, linkToken(mail ?? { text: '' })), 409, `${P}conflict`)
  const [failed] = await app.sql`select detail->>'reason' as reason from audit_events
    where event = 'auth.email.verify_failed' and user_id = ${user.id}`
  t.equal(failed?.reason, 'address_taken', 'audited on the account')
  t.equal((await user.inject('/api/users/me')).json().user.email, emailOf(user.username), 'unchanged')
})

t.test('one email-change link used twice at once: exactly one 204', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4' } })
  const user = await signUp(app, 'twice')
  const next = `${uniqueName('dup')}@example.com`
  t.equal((await change(user, next)).statusCode, 202)
  const token = linkToken((await waitForMails(smtp, next, /Confirm your new/, 1))[0] ?? { text: '' })
  const answers = await Promise.all([verify(app, token), verify(app, token), verify(app, token)])
  t.same(answers.map((r) => r.statusCode).sort(), [204, 400, 400])
  await waitForMails(smtp, emailOf(user.username), /Your email address was changed/, 1)
  const notices = smtp.mails.filter((m) => /Your email address was changed/.test(m.subject))
  t.equal(notices.length, 1, 'one notice')
})

t.test('budget and MAIL_DISABLED', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4', MAIL_RATE_LIMIT_MAX: '1' } })
  const user = await signUp(app, 'spender', { remoteAddress: '203.0.113.30' })
  const from = (remoteAddress: string) =>
    user.inject({
      method: 'PUT',
      url: '/api/users/me/email',
      payload: { email: `${uniqueName('b')}@example.com` },
      remoteAddress,
    })
  t.equal((await from('203.0.113.31')).statusCode, 202)
  const spent = expectProblem(
    t,
    await from('203.0.113.32'),
    429,
    `${P}rate-limited`,
    'another address, same account',
  )
  t.match(spent.detail, /Too many mails for this account/)

  const off = await build(t, { env: { MAIL_DISABLED: 'true', BCRYPT_COST: '4' } })
  const quiet = await signUp(off, 'quiet')
  expectProblem(t, await change(quiet, `${uniqueName('q')}@example.com`), 501, `${P}mail-disabled`)
})

t.test(
  'a pending change dies when the owner takes the account back (reset or password change)',
  async (t) => {
    const smtp = await startSmtpServer(t)
    const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4' } })
    for (const recovery of ['reset', 'change'] as const) {
      // An intruder with a fresh session (a stolen password) asks to move the account to their address.
      const owner = await signUp(app, `own${recovery}`)
      const intruder = await login(app, owner.username)
      const theirs = `${uniqueName('intruder')}@example.com`
      t.equal((await change({ inject: injectAs(app, intruder) }, theirs)).statusCode, 202)
      const [link] = await waitForMails(smtp, theirs, /Confirm your new email address/, 1)
      // The owner notices and takes the account back: every other session ends...
      if (recovery === 'reset') {
        const token = await resetLinkToken(app, smtp, emailOf(owner.username))
        const res = await resetPassword(app, { token, newPassword: OTHER_PASSWORD })
        t.equal(res.statusCode, 204, res.body)
      } else {
        const res = await owner.inject({
          method: 'PUT',
          url: '/api/users/me/password',
          payload: { currentPassword: TEST_PASSWORD, newPassword: OTHER_PASSWORD },
        })
        t.equal(res.statusCode, 204, res.body)
      }
      // ...and the link the intruder asked for must end with them, or it hands them the address.
      const late = await verify(app, linkToken(link ?? { text: '' }))
      expectProblem(t, late, 400, `${P}invalid-email-token`, `${recovery}: the intruder's link is dead`)
      t.equal(
        (await login(app, owner.username, OTHER_PASSWORD)).res.json().user.email,
        emailOf(owner.username),
        `${recovery}: the owner keeps the address`,
      )
    }
  },
)

t.test(
  'no enumeration through the requester’s own earlier link: a taken address kills it as a free one does',
  async (t) => {
    const smtp = await startSmtpServer(t)
    const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4' } })
    const victim = await register(app, uniqueName('victim'))
    const outcome: Record<string, number> = {}
    for (const [label, probed] of [
      ['taken', victim.email],
      ['free', `${uniqueName('nobody')}@example.com`],
    ] as const) {
      // The prober asks for an address they read, then for the probed one: their first link must not tell.
      const prober = await signUp(app, 'prober')
      const mine = `${uniqueName('mine')}@example.com`
      t.equal((await change(prober, mine)).statusCode, 202)
      const [link] = await waitForMails(smtp, mine, /Confirm your new email address/, 1)
      t.equal((await change(prober, probed)).statusCode, 202)
      outcome[label] = (await verify(app, linkToken(link ?? { text: '' }))).statusCode
    }
    t.equal(outcome.taken, outcome.free, `the earlier link fares alike (${JSON.stringify(outcome)})`)
  },
)
