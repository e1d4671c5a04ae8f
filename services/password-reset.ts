import { invalidEmailToken, invalidMfaCode } from '../lib/errors.js'
import * as tokens from '../repositories/email-tokens.js'
import { deleteChallenges } from '../repositories/mfa.js'
import { revokeSessions } from '../repositories/sessions.js'
import { findUserById, findUserByLogin, lockUser, resetPasswordHash } from '../repositories/users.js'
import type { ResetPasswordBody } from '../schemas/password-reset.js'
import { revokeKeysOf } from './api-keys.js'
import type { ServiceContext } from './context.js'
import { mailLink, queueMail, spendAccountBudget } from './mail.js'
import { hashOpaqueToken } from './opaque-tokens.js'
import { assertAcceptablePassword } from './password-policy.js'
import { hashPassword } from './passwords.js'
import { checkSecondFactor, hasSecondFactor } from './second-factor.js'

/** Password reset by mail: a single-use link to the account's address, then a new password (ASVS 5.0 6.4). */

type ResetContext = Pick<ServiceContext, 'sql' | 'config' | 'audit' | 'cipher' | 'throttle' | 'counters'>

/** Wrong second-factor codes a reset link survives, as a sign-in's second step (NIST SP 800-63B-4 §3.2.2). */
export const RESET_MAX_CODE_FAILURES = 5

/**
 * Mails a reset link to the account with this address, if there is one and it is enabled. The
 * caller's answer never waits for this (no enumeration by status, body or time: ASVS 5.0 6.3.8), so
 * an unknown address, a disabled account and a spent mail budget end quietly.
 */
export async function requestPasswordReset(ctx: ResetContext, email: string): Promise<void> {
  // The Email schema guarantees an "@", which no username has: only the address can match.
  const found = await findUserByLogin(ctx.sql, ctx.cipher, email)
  if (!found || found.disabled) {
    // Nothing about the address is recorded: the audit log is no list of probed addresses.
    const outcome = found ? 'disabled' : 'unknown_address'
    return ctx.audit('auth.password.reset_requested', found?.id ?? null, { outcome })
  }
  // Per account, whoever asks and from wherever: a mailbox cannot be flooded with links.
  if (!(await spendAccountBudget(ctx, 'mail', `reset:${found.id}`, true))) {
    return ctx.audit('auth.password.reset_requested', found.id, { outcome: 'mail_budget_spent' })
  }
  const ttlSeconds = ctx.config.PASSWORD_RESET_TTL_SECONDS
  await ctx.sql.begin(async (tx) => {
    // The user row first (the house lock order): of two requests at once, one link stays live.
    const user = await lockUser(tx, ctx.cipher, found.id)
    if (!user || user.disabled) return
    // Earlier unused links die: only the newest works.
    await mailLink(ctx, tx, { template: 'password-reset', user, email: user.email, ttlSeconds })
    await ctx.audit('auth.password.reset_requested', user.id, { outcome: 'sent' }, tx)
  })
}

type Refusal = 'unknown_token' | 'wrong_purpose' | 'disabled' | 'used' | 'address_changed' | 'too_many_codes'
type Outcome = { done: true } | { refused: Refusal } | { codeMissing: true } | { failures: number }

const codeMissing = () =>
  invalidMfaCode(
    'This account has two-factor authentication: send a current code or a recovery code as `code`.',
  )

/**
 * Sets a new password with a live reset link (and a second factor when the account has one), then
 * ends every session: whoever held the old password is out (ASVS 5.0 6.4.3, 7.4.3). One answer for
 * every unusable link; a refused password or a missing code leaves the link usable.
 */
export async function resetPassword(ctx: ResetContext, body: ResetPasswordBody): Promise<void> {
  const hash = hashOpaqueToken(body.token)
  const found = await tokens.findLiveToken(ctx.sql, hash, RESET_MAX_CODE_FAILURES)
  if (found?.purpose !== 'password_reset') {
    return refuse(ctx, found?.userId ?? null, found ? 'wrong_purpose' : 'unknown_token')
  }
  // Per account, across addresses: one account's links cannot be hammered (ASVS 5.0 6.3.1).
  await spendAccountBudget(ctx, 'token', found.userId)
  const user = await findUserById(ctx.sql, ctx.cipher, found.userId)
  if (!user || user.disabled) return refuse(ctx, found.userId, 'disabled')
  // Before the link is spent, so a refused password can be replaced by a better one.
  await assertAcceptablePassword(ctx, body.newPassword, { ...user, userId: user.id }, 'body.newPassword')
  // Checked again in the transaction; here it spares a bcrypt hash for an answer known already.
  if (body.code === undefined && (await hasSecondFactor(ctx.sql, user.id))) {
    await ctx.audit('auth.mfa.code_failed', user.id, { stage: 'password-reset', reason: 'missing' })
    throw codeMissing()
  }
  // Codes sent with links spend the account's code budget, as at sign-in (ASVS 5.0 6.3.1).
  if (body.code !== undefined) await ctx.throttle?.limiter.reserveCode(user.id)
  const passwordHash = await hashPassword(body.newPassword, ctx.config)
  const outcome = await ctx.sql.begin(async (tx): Promise<Outcome> => {
    // User row, then the token: the order sign-in's second step and password changes take.
    const locked = await lockUser(tx, ctx.cipher, user.id)
    const token = await tokens.lockLiveToken(tx, ctx.cipher, hash, RESET_MAX_CODE_FAILURES)
    if (!locked || locked.disabled) return { refused: 'disabled' }
    if (!token) return { refused: 'used' }
    // A link mailed to an address the account no longer has proves nothing about the account.
    if (token.email !== locked.email) return { refused: 'address_changed' }
    if (await hasSecondFactor(tx, locked.id)) {
      if (body.code === undefined) return { codeMissing: true }
      const factor = await checkSecondFactor(ctx, tx, locked.id, body.code)
      if (!factor.ok) {
        const failures = await tokens.failToken(tx, token.id)
        const detail = { stage: 'password-reset', reason: factor.reason, failures }
        await ctx.audit('auth.mfa.code_failed', locked.id, detail, tx)
        return { failures }
      }
    }
    // Also marks the address verified: following the mailed link proved the mailbox is the user's.
    await resetPasswordHash(tx, locked.id, passwordHash)
    await tokens.spendToken(tx, token.id)
    // An email change asked for from a session that ends now ends with it: else whoever held the old
    // password could still move the account to their address (OWASP ASVS 5.0 7.4.3).
    await tokens.deleteTokens(tx, locked.id, ['password_reset', 'email_change'])
    // A sign-in half done with the old password (waiting for its code) cannot finish with it.
    await deleteChallenges(tx, locked.id)
    const revoked = await revokeSessions(tx, { userId: locked.id }, 'password_reset')
    // API keys end with the password, unless configured otherwise (issue 16).
    if (ctx.config.API_KEYS_REVOKE_ON_PASSWORD_CHANGE) {
      await revokeKeysOf(ctx, tx, locked.id, 'password_reset')
    }
    await queueMail(ctx, tx, {
      template: 'password-reset-done',
      userId: locked.id,
      to: locked.email,
      data: { username: locked.username },
    })
    const detail = { sessionsRevoked: revoked.length, emailVerifiedNow: locked.emailVerifiedAt === null }
    await ctx.audit('auth.password.reset', locked.id, detail, tx)
    return { done: true }
  })
  if ('refused' in outcome) return refuse(ctx, user.id, outcome.refused)
  if ('codeMissing' in outcome) {
    await ctx.audit('auth.mfa.code_failed', user.id, { stage: 'password-reset', reason: 'missing' })
    throw codeMissing()
  }
  if ('failures' in outcome) {
    // The last wrong code spent the link: the answer says so, as a sign-in's second step does.
    if (outcome.failures < RESET_MAX_CODE_FAILURES) throw invalidMfaCode()
    return refuse(ctx, user.id, 'too_many_codes')
  }
  if (body.code !== undefined) await ctx.throttle?.limiter.releaseCode(user.id)
}

async function refuse(ctx: ResetContext, userId: string | null, reason: Refusal): Promise<never> {
  await ctx.audit('auth.password.reset_failed', userId, { reason })
  throw invalidEmailToken()
}
