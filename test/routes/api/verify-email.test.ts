import { randomUUID } from 'node:crypto'
import t from 'tap'
import { insertToken } from '../../../repositories/email-tokens.js'
import { insertMail } from '../../../repositories/outbox.js'
import type { Problem } from '../../../schemas/common.js'
import { newOpaqueToken } from '../../../services/opaque-tokens.js'
import {
  type App,
  build,
  expectProblem,
  type InjectResponse,
  linkToken,
  signUp,
  startSmtpServer,
  uniqueName,
  waitForLockWaiter,
  waitForMails,
} from '../../helper.js'

/** Issue 15: the verification link, from the real mail to GET /api/users/me, and every way a token is refused. */

const P = 'urn:bulwark:problem:'
const CONFIRM = /Confirm your email address/
const verify = (app: App, token: string, remoteAddress?: string) =>
  app.inject({
    method: 'POST',
    url: '/api/auth/verify-email',
    payload: { token },
    ...(remoteAddress ? { remoteAddress } : {}),
  })
const emailOf = (username: string) => `${username}@example.com`

t.test('register → the mailed link → verified; the link works once, an old one dies on resend', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4' } })
  const user = await signUp(app, 'ver')
  const [mail] = await waitForMails(smtp, emailOf(user.username), CONFIRM, 1)
  t.match(mail?.text, /\/verify-email#token=[A-Za-z0-9_-]{43}\s/, 'the token is in the fragment')
  t.notMatch(mail?.text, /\?token=/, 'never in a query string')
  const me = async () => (await user.inject('/api/users/me')).json<{ user: { emailVerified: boolean } }>()
  t.equal((await me()).user.emailVerified, false, 'unverified after registration')

  // A new link kills the old one: only the newest mail works.
  const resent = await user.inject({ method: 'POST', url: '/api/auth/verify-email/resend' })
  t.equal(resent.statusCode, 202)
  t.same(resent.json(), { expiresIn: 86_400 })
  const mails = await waitForMails(smtp, emailOf(user.username), CONFIRM, 2)
  const [first, second] = mails.map((m) => linkToken(m))
  t.not(first, second)
  const stale = expectProblem(t, await verify(app, first ?? ''), 400, `${P}invalid-email-token`, 'old link')

  const ok = await verify(app, second ?? '')
  t.equal(ok.statusCode, 204, ok.body)
  t.equal((await me()).user.emailVerified, true, 'GET /api/users/me shows it verified')
  const reused = expectProblem(t, await verify(app, second ?? ''), 400, `${P}invalid-email-token`, 'reuse')
  t.equal(reused.detail, stale.detail, 'one message for every bad token')
  expectProblem(
    t,
    await user.inject({ method: 'POST', url: '/api/auth/verify-email/resend' }),
    409,
    `${P}conflict`,
  )

  const audit = await app.sql<{ event: string; requestId: string }[]>`
    select event, request_id, detail::text as detail from audit_events
    where user_id = ${user.id} or request_id in ${app.sql([stale.requestId, reused.requestId])}`
  t.ok(
    audit.some((a) => a.event === 'auth.email.verified'),
    'the verification is audited',
  )
  t.same(
    audit
      .filter((a) => a.event === 'auth.email.verify_failed')
      .map((a) => a.requestId)
      .sort(),
    [stale.requestId, reused.requestId].sort(),
    'each refused token is audited',
  )
  t.notMatch(JSON.stringify(audit), new RegExp(`${first}|${second}`), 'no token in the audit')
})

t.test('expired, unknown, reset-purpose and disabled-account tokens are one 400', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4' } })
  const user = await signUp(app, 'exp')
  const token = linkToken((await waitForMails(smtp, emailOf(user.username), CONFIRM, 1))[0] ?? { text: '' })
  const detail = (res: Awaited<ReturnType<typeof verify>>, label: string) =>
    expectProblem(t, res, 400, `${P}invalid-email-token`, label).detail

  await app.sql`update email_tokens set expires_at = now() - interval '1 second' where user_id = ${user.id}`
  const expired = detail(await verify(app, token), 'expired')
  await app.sql`update email_tokens set expires_at = now() + interval '1 hour' where user_id = ${user.id}`
  t.equal(detail(await verify(app, newOpaqueToken().token), 'unknown'), expired)
  expectProblem(t, await verify(app, 'short'), 400, `${P}validation-error`, 'not a token at all')

  // A password-reset token proves nothing here, and is not spent by trying it.
  const reset = newOpaqueToken()
  await insertToken(app.sql, app.cipher, {
    id: randomUUID(),
    userId: user.id,
    purpose: 'password_reset',
    hash: reset.hash,
    email: emailOf(user.username),
    ttlSeconds: 600,
  })
  t.equal(detail(await verify(app, reset.token), 'reset token'), expired)
  const [resetRow] = await app.sql`select used_at from email_tokens where token_hash = ${reset.hash}`
  t.equal(resetRow?.usedAt, null, 'the reset token is still unused')

  await app.sql`update users set disabled = true where id = ${user.id}`
  t.equal(detail(await verify(app, token), 'disabled account'), expired)
  await app.sql`update users set disabled = false where id = ${user.id}`
  t.equal((await verify(app, token)).statusCode, 204, 'the same link works once the account is enabled')
})

t.test('a link proves only the address it was sent to, while it is still the account’s', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4' } })
  const user = await signUp(app, 'moved')
  const token = linkToken((await waitForMails(smtp, emailOf(user.username), CONFIRM, 1))[0] ?? { text: '' })
  // The address changed behind the link's back (an operator, say): the link no longer proves it.
  const other = `${uniqueName('else')}@example.com`
  await app.sql`update users set email = ${app.cipher.encrypt(other, { table: 'users', column: 'email', rowId: user.id })},
    email_index = ${app.cipher.blindIndex(other)} where id = ${user.id}`
  expectProblem(t, await verify(app, token), 400, `${P}invalid-email-token`)
  const [row] = await app.sql`select email_verified_at from users where id = ${user.id}`
  t.equal(row?.emailVerifiedAt, null, 'nothing was verified')
})

t.test('one token used twice at once: exactly one 204', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4' } })
  const user = await signUp(app, 'race')
  const token = linkToken((await waitForMails(smtp, emailOf(user.username), CONFIRM, 1))[0] ?? { text: '' })
  const answers = await Promise.all(Array.from({ length: 4 }, () => verify(app, token)))
  t.same(answers.map((r) => r.statusCode).sort(), [204, 400, 400, 400])
  const [row] =
    await app.sql`select count(*)::int as n from audit_events where event = 'auth.email.verified' and user_id = ${user.id}`
  t.equal(row?.n, 1, 'verified once')
})

t.test('deadlock: following the link while a resend holds the user row gives no 5xx', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4' } })
  const user = await signUp(app, 'lockorder')
  const token = linkToken((await waitForMails(smtp, emailOf(user.username), CONFIRM, 1))[0] ?? { text: '' })
  let pending: Promise<InjectResponse[]> | undefined
  // The test holds the user row: the resend queues on it first, then the link's use (holding its
  // token) queues behind. Released, the resend takes the row and must then touch the token.
  await app.sql.begin(async (tx) => {
    await tx`select 1 from users where id = ${user.id} for update`
    const resend = user.inject({ method: 'POST', url: '/api/auth/verify-email/resend' })
    await waitForLockWaiter(app, 5000, 1)
    const follow = verify(app, token)
    await waitForLockWaiter(app, 5000, 2)
    pending = Promise.all([resend, follow])
  })
  const [resend, follow] = await (pending as Promise<InjectResponse[]>)
  t.ok([202, 409].includes(resend?.statusCode ?? 0), `resend: mailed, or already verified (${resend?.body})`)
  t.ok([204, 400].includes(follow?.statusCode ?? 0), `verify: done, or the link died (${follow?.body})`)
})

t.test('limits: per address on the route, per account on live tokens whatever the address', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4', TOKEN_RATE_LIMIT_MAX: '2' } })
  const user = await signUp(app, 'lim', { remoteAddress: '203.0.113.9' })
  const token = linkToken((await waitForMails(smtp, emailOf(user.username), CONFIRM, 1))[0] ?? { text: '' })
  const garbage = newOpaqueToken().token
  const fromOne = [await verify(app, garbage, '198.51.100.1'), await verify(app, garbage, '198.51.100.1')]
  t.same(
    fromOne.map((r) => r.statusCode),
    [400, 400],
  )
  expectProblem(
    t,
    await verify(app, garbage, '198.51.100.1'),
    429,
    `${P}rate-limited`,
    'third from one address',
  )
  // A disabled account's link stays live but is refused: each try spends the account's budget.
  await app.sql`update users set disabled = true where id = ${user.id}`
  t.equal((await verify(app, token, '198.51.100.2')).statusCode, 400)
  t.equal((await verify(app, token, '198.51.100.3')).statusCode, 400)
  const spent = expectProblem(t, await verify(app, token, '198.51.100.4'), 429, `${P}rate-limited`)
  t.match(spent.detail, /mailed links for this account/)
})

t.test('the mail escapes what it shows, and keeps the token out of the query string', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, PUBLIC_APP_URL: 'https://app.example.test' } })
  const to = `${uniqueName('xss')}@example.com`
  const { token } = newOpaqueToken()
  // Usernames cannot hold markup, so the hostile value goes into the outbox directly.
  const username = '<img src=x onerror=alert(1)>&"\''
  const payload = { username, token, expiresInSeconds: 3600 }
  await insertMail(app.sql, app.cipher, {
    id: randomUUID(),
    template: 'verify-email',
    userId: null,
    recipient: to,
    payload,
  })
  const [mail] = await waitForMails(smtp, to, CONFIRM, 1)
  t.notMatch(mail?.html, /<img/, 'no markup from the data')
  t.match(mail?.html, /Hello &lt;img src=x onerror=alert\(1\)&gt;&amp;&quot;&#39;,/, 'escaped')
  t.match(mail?.html, new RegExp(`href="https://app\\.example\\.test/verify-email#token=${token}"`))
  t.equal(linkToken(mail ?? { text: '' }), token)
})

t.test('MAIL_DISABLED=true: registration works without mail; the link routes answer 501', async (t) => {
  const app = await build(t, { env: { MAIL_DISABLED: 'true', BCRYPT_COST: '4' } })
  const user = await signUp(app, 'nomail')
  const [rows] =
    await app.sql`select (select count(*)::int from email_tokens where user_id = ${user.id}) as tokens,
    (select count(*)::int from outbox where user_id = ${user.id}) as mails`
  t.same(rows, { tokens: 0, mails: 0 }, 'no token and no mail')
  const off = expectProblem(t, await verify(app, newOpaqueToken().token), 501, `${P}mail-disabled`)
  t.match(off.detail, /MAIL_DISABLED/)
  const resend = await user.inject({ method: 'POST', url: '/api/auth/verify-email/resend' })
  expectProblem(t, resend, 501, `${P}mail-disabled`)
  t.equal(resend.json<Problem>().status, 501)
})

t.test('resend: signed in only, and within the account’s mail budget whatever the address', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4', MAIL_RATE_LIMIT_MAX: '2' } })
  expectProblem(t, await app.inject({ method: 'POST', url: '/api/auth/verify-email/resend' }), 401)
  const user = await signUp(app, 'budget', { remoteAddress: '203.0.113.20' })
  const resend = (remoteAddress: string) =>
    user.inject({ method: 'POST', url: '/api/auth/verify-email/resend', remoteAddress })
  // Registration's link was the first of two; one resend is left.
  t.equal((await resend('203.0.113.21')).statusCode, 202)
  const spent = expectProblem(t, await resend('203.0.113.22'), 429, `${P}rate-limited`)
  t.match(spent.detail, /Too many mails for this account/)
  await waitForMails(smtp, emailOf(user.username), CONFIRM, 2)
  t.equal(smtp.mails.length, 2, 'no third mail')
})
