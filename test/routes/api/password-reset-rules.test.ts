import t, { type Test } from 'tap'
import { insertToken } from '../../../repositories/email-tokens.js'
import { newOpaqueToken } from '../../../services/opaque-tokens.js'
import {
  attemptLogin,
  build,
  enrolTotp,
  expectProblem,
  forgetUsedTotpSteps,
  type InjectResponse,
  OTHER_PASSWORD,
  resetLinkToken,
  resetPassword,
  signUp,
  startSmtpServer,
  TEST_PASSWORD,
  totpCode,
  verifyMfa,
  waitForLockWaiter,
} from '../../helper.js'

/** The rules a reset link obeys: second factor, password policy, purpose, single use under a race. */

const P = 'urn:bulwark:problem:'
const emailOf = (user: { username: string }) => `${user.username}@example.com`
/** Shaped like a recovery code, so it is checked as one, and never right. */
const WRONG_CODE = 'aaaaaa-aaaaaa-aaaaaa-aaaaaa'

async function setup(t: Test, env: Record<string, string> = {}) {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4', ...env } })
  return { smtp, app }
}

t.test('two-factor: a reset needs a code; without one the link stays usable', async (t) => {
  const { smtp, app } = await setup(t)
  const user = await signUp(app, 'mfa')
  const { secret } = await enrolTotp(app, user)
  // A sign-in half done with the old password (waiting for its code) must not survive the reset.
  const pending = (await attemptLogin(app, user.username)).json<{ mfaToken: string }>().mfaToken
  const token = await resetLinkToken(app, smtp, emailOf(user))
  const missing = await resetPassword(app, { token, newPassword: OTHER_PASSWORD })
  const body = expectProblem(t, missing, 401, `${P}invalid-mfa-code`)
  t.match(body.detail, /two-factor authentication: send a current code or a recovery code/)
  const done = await resetPassword(app, { token, newPassword: OTHER_PASSWORD, code: totpCode(secret) })
  t.equal(done.statusCode, 204, done.body)
  await forgetUsedTotpSteps(app, user.id)
  const stale = await verifyMfa(app, pending, totpCode(secret))
  expectProblem(t, stale, 401, `${P}invalid-mfa-token`, 'the pending sign-in step died')
  const next = await attemptLogin(app, user.username, OTHER_PASSWORD)
  t.equal(next.json().mfaRequired, true, 'two-factor stays on for the new password')
})

t.test('wrong codes: the link dies after 5, and they spend the account code budget', async (t) => {
  const { smtp, app } = await setup(t, { LOGIN_ACCOUNT_MAX_FAILURES: '6' })
  const user = await signUp(app, 'mfabad')
  const { secret } = await enrolTotp(app, user)
  const token = await resetLinkToken(app, smtp, emailOf(user))
  const attempt = (code: string, link = token) =>
    resetPassword(app, { token: link, newPassword: OTHER_PASSWORD, code })
  for (let i = 1; i <= 4; i++)
    expectProblem(t, await attempt(WRONG_CODE), 401, `${P}invalid-mfa-code`, `wrong code ${i}`)
  expectProblem(
    t,
    await attempt(WRONG_CODE),
    400,
    `${P}invalid-email-token`,
    'the 5th wrong code kills the link',
  )
  expectProblem(
    t,
    await attempt(totpCode(secret)),
    400,
    `${P}invalid-email-token`,
    'even the right code is late',
  )
  t.equal(
    (await attemptLogin(app, user.username, TEST_PASSWORD)).statusCode,
    200,
    'the password is unchanged',
  )

  // The account's code budget (6 here) is shared with sign-in: a new link does not reset it.
  const again = await resetLinkToken(app, smtp, emailOf(user))
  expectProblem(t, await attempt(WRONG_CODE, again), 401, `${P}invalid-mfa-code`, 'the 6th wrong code')
  expectProblem(
    t,
    await attempt(totpCode(secret), again),
    429,
    `${P}rate-limited`,
    'then the budget is spent',
  )
})

t.test('a recovery code resets once', async (t) => {
  const { smtp, app } = await setup(t)
  const user = await signUp(app, 'recovery')
  const { recoveryCodes } = await enrolTotp(app, user)
  const [first = '', second = ''] = recoveryCodes
  const token = await resetLinkToken(app, smtp, emailOf(user))
  t.equal((await resetPassword(app, { token, newPassword: OTHER_PASSWORD, code: first })).statusCode, 204)
  const again = await resetLinkToken(app, smtp, emailOf(user))
  const reused = await resetPassword(app, { token: again, newPassword: TEST_PASSWORD, code: first })
  expectProblem(t, reused, 401, `${P}invalid-mfa-code`, 'a spent recovery code')
  t.equal(
    (await resetPassword(app, { token: again, newPassword: TEST_PASSWORD, code: second })).statusCode,
    204,
  )
})

t.test('the password rules apply, and a refused password leaves the link usable', async (t) => {
  const { smtp, app } = await setup(t)
  const user = await signUp(app, 'policy')
  const token = await resetLinkToken(app, smtp, emailOf(user))
  const cases: [string, RegExp][] = [
    ['short', /at least 15 characters/],
    ['passwordpassword', /too common/],
    [`my-${user.username}-pass`, /contains your username/],
  ]
  for (const [newPassword, message] of cases) {
    const body = expectProblem(
      t,
      await resetPassword(app, { token, newPassword }),
      400,
      `${P}validation-error`,
    )
    t.match(body.errors, [{ path: 'body.newPassword', message }], `${newPassword}: ${message}`)
  }
  t.equal(
    (await resetPassword(app, { token, newPassword: OTHER_PASSWORD })).statusCode,
    204,
    'the link still works',
  )
})

t.test(
  'a token that is not the shape of one is refused by the schema, before any database work',
  async (t) => {
    const { app } = await setup(t)
    for (const token of [
      '',
      'a'.repeat(42),
      'a'.repeat(44),
      `${'a'.repeat(42)}=`,
      "' or 1=1 --".padEnd(43, 'x'),
    ]) {
      const res = await resetPassword(app, { token, newPassword: OTHER_PASSWORD })
      const body = expectProblem(t, res, 400, `${P}validation-error`, JSON.stringify(token))
      t.match(body, { errors: [{ path: 'body.token' }] })
    }
  },
)

t.test('a token of another purpose (email verification) is refused and left alone', async (t) => {
  const { app } = await setup(t)
  const user = await signUp(app, 'purpose')
  const { token, hash } = newOpaqueToken()
  const id = crypto.randomUUID()
  const row = {
    id,
    userId: user.id,
    purpose: 'verify_email' as const,
    hash,
    email: emailOf(user),
    ttlSeconds: 600,
  }
  await insertToken(app.sql, app.cipher, row)
  expectProblem(
    t,
    await resetPassword(app, { token, newPassword: OTHER_PASSWORD }),
    400,
    `${P}invalid-email-token`,
  )
  const [left] = await app.sql<{ usedAt: Date | null }[]>`select used_at from email_tokens where id = ${id}`
  t.equal(left?.usedAt, null, 'the verification token is not spent')
  t.equal(
    (await attemptLogin(app, user.username, TEST_PASSWORD)).statusCode,
    200,
    'the password is unchanged',
  )
})

t.test('a link mailed to an address the account no longer has is refused', async (t) => {
  const { smtp, app } = await setup(t)
  const user = await signUp(app, 'moved')
  const token = await resetLinkToken(app, smtp, emailOf(user))
  const [row] = await app.sql<
    { id: string }[]
  >`select id from email_tokens where user_id = ${user.id} and purpose = 'password_reset'`
  const id = row?.id ?? ''
  const sealed = app.cipher.encrypt('earlier@example.com', {
    table: 'email_tokens',
    column: 'email',
    rowId: id,
  })
  await app.sql`update email_tokens set email = ${sealed} where id = ${id}`
  expectProblem(
    t,
    await resetPassword(app, { token, newPassword: OTHER_PASSWORD }),
    400,
    `${P}invalid-email-token`,
  )
})

t.test('one link used twice at once: exactly one reset', async (t) => {
  const { smtp, app } = await setup(t)
  const user = await signUp(app, 'race')
  const token = await resetLinkToken(app, smtp, emailOf(user))
  const passwords = [OTHER_PASSWORD, 'Amber-Falcon-Ridge-73']
  let pending: Promise<InjectResponse[]> | undefined
  // The test holds the user's row until both requests wait on it, so they truly overlap.
  await app.sql.begin(async (tx) => {
    await tx`select 1 from users where id = ${user.id} for update`
    pending = Promise.all(passwords.map((newPassword) => resetPassword(app, { token, newPassword })))
    await waitForLockWaiter(app, 5000, 2)
  })
  const answers = await (pending as Promise<InjectResponse[]>)
  t.same(answers.map((a) => a.statusCode).sort(), [204, 400], 'one 204, one 400')
  const winner = passwords[answers.findIndex((a) => a.statusCode === 204)] ?? ''
  const loser = passwords.find((p) => p !== winner) ?? ''
  t.equal((await attemptLogin(app, user.username, winner)).statusCode, 200, 'the winner set the password')
  t.equal((await attemptLogin(app, user.username, loser)).statusCode, 401, 'the other did not')
})
