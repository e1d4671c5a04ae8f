import type { TransactionSql } from 'postgres'
import { invalidField } from '../lib/errors.js'
import { normalizeEmail } from '../lib/field-crypto.js'
import { deleteTokens, spendToken } from '../repositories/email-tokens.js'
import type { SessionPrincipal } from '../repositories/sessions.js'
import { findUserByEmail, setVerifiedEmail, type UserRow, userOfPrincipal } from '../repositories/users.js'
import type { LinkMailed } from '../schemas/email.js'
import type { ServiceContext } from './context.js'
import { assertMailEnabled, mailLink, queueMail, spendAccountBudget } from './mail.js'
import { assertRecentAuthentication } from './step-up.js'

/**
 * Changing the email address: asked for by the signed-in user, done only when the new address
 * follows its link (services/email-verification.ts), and told to the old address.
 */

type EmailChangeContext = Pick<ServiceContext, 'sql' | 'config' | 'audit' | 'cipher' | 'counters'>

/** `alice@example.com` → `a***@example.com`: enough for the owner to recognise, little for anyone else. */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@')
  return `${email.slice(0, Math.min(1, at))}***${email.slice(at)}`
}

/**
 * Asks for a change to `email` (answered 202 whatever happens next). Needs a recent authentication
 * (OWASP ASVS 5.0 7.5.3). An address of another account gets that owner a notice and the requester
 * the same answer as a free one (ASVS 6.3.8); a free address gets a link that makes the change.
 */
export async function requestEmailChange(
  ctx: EmailChangeContext,
  principal: SessionPrincipal,
  email: string,
): Promise<LinkMailed> {
  assertMailEnabled(ctx.config)
  assertRecentAuthentication(principal, ctx.config.REAUTH_MAX_AGE_SECONDS)
  const me = userOfPrincipal(ctx.cipher, principal)
  const next = normalizeEmail(email)
  if (next === me.email) throw invalidField('body.email', 'is already your email address')
  await spendAccountBudget(ctx, 'mail', `email-change:${me.id}`)
  await ctx.sql.begin(async (tx) => {
    const owner = await findUserByEmail(tx, ctx.cipher, next)
    if (owner) {
      // Earlier links die as for a free address: else the requester's own earlier link, still live,
      // would tell them this address has an account (OWASP ASVS 5.0 6.3.8).
      await deleteTokens(tx, me.id, ['email_change'])
      if (await spendAccountBudget(ctx, 'mail', `change-attempt:${owner.id}`, true)) {
        const data = { username: owner.username }
        await queueMail(ctx, tx, {
          template: 'email-change-attempt',
          userId: owner.id,
          to: owner.email,
          data,
        })
      }
      await ctx.audit('auth.email.change_requested', me.id, { addressInUse: true }, tx)
      return
    }
    await mailLink(ctx, tx, {
      template: 'email-change-verify',
      user: me,
      email: next,
      ttlSeconds: ctx.config.EMAIL_VERIFICATION_TTL_SECONDS,
    })
    await ctx.audit('auth.email.change_requested', me.id, { addressInUse: false }, tx)
  })
  return { expiresIn: ctx.config.EMAIL_VERIFICATION_TTL_SECONDS }
}

/**
 * Makes the proved address the account's (locked user `user`, live token `token`). Links sent to
 * the old address die (a reset link must not reach a mailbox the user left), and the old address
 * is told, with the new one masked.
 */
export async function applyEmailChange(
  ctx: Pick<ServiceContext, 'config' | 'audit' | 'cipher'>,
  tx: TransactionSql,
  user: UserRow,
  token: { id: string; email: string },
): Promise<void> {
  await setVerifiedEmail(tx, ctx.cipher, user.id, token.email)
  await deleteTokens(tx, user.id, ['password_reset', 'verify_email'])
  await spendToken(tx, token.id)
  await queueMail(ctx, tx, {
    template: 'email-changed',
    userId: user.id,
    to: user.email,
    data: { username: user.username, newEmail: maskEmail(token.email) },
  })
  await ctx.audit('auth.email.changed', user.id, {}, tx)
}
