import type { Sql, TransactionSql } from 'postgres'
import { conflict, invalidEmailToken } from '../lib/errors.js'
import { findLiveToken, lockLiveToken, spendToken } from '../repositories/email-tokens.js'
import type { Principal } from '../repositories/sessions.js'
import { lockUser, markEmailVerified, type UserRow } from '../repositories/users.js'
import type { LinkMailed } from '../schemas/email.js'
import type { ServiceContext } from './context.js'
import { applyEmailChange } from './email-change.js'
import { assertMailEnabled, mailLink, spendAccountBudget } from './mail.js'
import { hashOpaqueToken } from './opaque-tokens.js'

/** Proving an address: the verification link, following it (also for an email change), and asking again. */

type VerificationContext = Pick<ServiceContext, 'sql' | 'config' | 'audit' | 'cipher' | 'counters'>

const UNIQUE_VIOLATION = '23505'

/**
 * Mails a new link for the user's current address in `tx`; earlier unused links die with it, so only
 * the newest works (repositories/email-tokens.ts). Nothing at all while mail is disabled.
 */
export async function sendVerification(
  ctx: Pick<ServiceContext, 'config' | 'audit' | 'cipher'>,
  tx: Sql | TransactionSql,
  user: Pick<UserRow, 'id' | 'username' | 'email'>,
): Promise<void> {
  if (ctx.config.MAIL_DISABLED) return
  await mailLink(ctx, tx, {
    template: 'verify-email',
    user,
    email: user.email,
    ttlSeconds: ctx.config.EMAIL_VERIFICATION_TTL_SECONDS,
  })
}

type Failure = { userId: string | null; reason: string }

/**
 * Follows a mailed link: a `verify_email` token proves the account's current address, an
 * `email_change` token makes its address the account's. User, then token, locked in one transaction:
 * of two requests with one token, one succeeds and the other finds it spent. Every failure looks the
 * same (400 `invalid-email-token`); a reset token is never accepted here, nor spent by trying.
 */
export async function verifyEmail(ctx: VerificationContext, token: string): Promise<void> {
  assertMailEnabled(ctx.config)
  let failure: Failure | undefined
  let userId: string | null = null
  try {
    failure = await ctx.sql.begin(async (tx): Promise<Failure | undefined> => {
      const hash = hashOpaqueToken(token)
      const seen = await findLiveToken(tx, hash)
      if (!seen) return { userId: null, reason: 'unknown_or_expired' }
      userId = seen.userId
      if (seen.purpose === 'password_reset') return { userId: seen.userId, reason: 'wrong_purpose' }
      // Uses of mailed links per account, whatever addresses they come from (OWASP ASVS 5.0 6.3.1).
      await spendAccountBudget(ctx, 'token', seen.userId)
      // User row, then the token: the house lock order (services/sign-in.ts), which a resend, a reset
      // or a change request also takes; the other order deadlocks against them.
      const user = await lockUser(tx, ctx.cipher, seen.userId)
      const found = await lockLiveToken(tx, ctx.cipher, hash)
      if (!found) return { userId: seen.userId, reason: 'unknown_or_expired' }
      if (!user || user.disabled) return { userId: found.userId, reason: 'account_disabled' }
      if (found.purpose === 'email_change' && found.email) {
        await applyEmailChange(ctx, tx, user, { id: found.id, email: found.email })
        return undefined
      }
      await spendToken(tx, found.id)
      // A link proves the address it was sent to, and only while that is still the account's.
      if (found.email !== user.email) {
        await ctx.audit('auth.email.verify_failed', user.id, { reason: 'address_changed' }, tx)
        return { userId: user.id, reason: 'address_changed' }
      }
      await markEmailVerified(tx, user.id)
      await ctx.audit('auth.email.verified', user.id, {}, tx)
      return undefined
    })
  } catch (error) {
    const e = error as { code?: string; constraint_name?: string }
    if (e.code !== UNIQUE_VIOLATION || e.constraint_name !== 'users_email_key') throw error
    await ctx.audit('auth.email.verify_failed', userId, { reason: 'address_taken' })
    // Told only to whoever holds the link, that is who reads the new address's mail.
    throw conflict('That email address now belongs to another account.', 'conflict')
  }
  if (!failure) return
  // address_changed was recorded in its transaction, together with the spent token.
  if (failure.reason !== 'address_changed') {
    await ctx.audit('auth.email.verify_failed', failure.userId, { reason: failure.reason })
  }
  throw invalidEmailToken()
}

/**
 * Mails the signed-in user a new link (earlier ones die). 409 when the address is already verified;
 * spends the account's mail budget (429 when it is spent).
 */
export async function resendVerification(
  ctx: VerificationContext,
  principal: Principal,
): Promise<LinkMailed> {
  assertMailEnabled(ctx.config)
  const alreadyVerified = () => conflict('This email address is already verified.')
  if (principal.emailVerifiedAt) throw alreadyVerified()
  await spendAccountBudget(ctx, 'mail', `verify:${principal.userId}`)
  const sent = await ctx.sql.begin(async (tx) => {
    // The row as it is now: an email change or a verification may have committed since the sign-in.
    const user = await lockUser(tx, ctx.cipher, principal.userId)
    if (!user || user.emailVerifiedAt) return false
    await sendVerification(ctx, tx, user)
    await ctx.audit('auth.email.verification_resent', user.id, {}, tx)
    return true
  })
  if (!sent) throw alreadyVerified()
  return { expiresIn: ctx.config.EMAIL_VERIFICATION_TTL_SECONDS }
}
