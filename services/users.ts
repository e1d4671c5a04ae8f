import { randomUUID } from 'node:crypto'
import { conflict, forbidden, notFound } from '../lib/errors.js'
import { normalizeEmail } from '../lib/field-crypto.js'
import { deleteTokens } from '../repositories/email-tokens.js'
import { deleteChallenges } from '../repositories/mfa.js'
import * as sessionsRepo from '../repositories/sessions.js'
import * as users from '../repositories/users.js'
import type { PasswordChangeBody, PublicUser, RegisterBody, Role } from '../schemas/auth.js'
import type { Profile } from '../schemas/users.js'
import { revokeKeysOf } from './api-keys.js'
import type { ServiceContext } from './context.js'
import { sendVerification } from './email-verification.js'
import { budgetOf, checkWithinBudget } from './login-throttle.js'
import { queueMail, spendAccountBudget } from './mail.js'
import { notify } from './notices.js'
import { assertAcceptablePassword } from './password-policy.js'
import { hashPassword, verifyPassword } from './passwords.js'

/** Account rules: registration, password change, profiles. */

type UsersContext = Pick<ServiceContext, 'sql' | 'config' | 'audit' | 'cipher' | 'throttle'>
type Reader = Pick<ServiceContext, 'sql' | 'cipher'>

export function toPublicUser(u: users.UserRow): PublicUser {
  return {
    id: u.id,
    username: u.username,
    email: u.email,
    role: u.role,
    emailVerified: u.emailVerifiedAt !== null,
    createdAt: u.createdAt.toISOString(),
  }
}

type RegisterContext = UsersContext & Pick<ServiceContext, 'counters'>

export interface CreateUserOptions {
  /**
   * Answer 409 for an email that already has an account. Only for the operator's CLI, whose user
   * may know; over HTTP that answer would tell anyone which addresses are registered.
   */
  revealTakenEmail?: boolean
}

/**
 * Registers an account and mails its verification link. An email that already has an account is
 * answered like a fresh registration, with a made-up user of the same shape, and its owner is told
 * instead (OWASP ASVS 5.0 6.3.8); both paths write and read alike, so timing does not tell either.
 * Usernames are public: a taken one is 409. The unique indexes decide between concurrent registrations.
 */
export async function createUser(
  ctx: RegisterContext,
  input: RegisterBody & { role?: Role },
  options: CreateUserOptions = {},
): Promise<PublicUser> {
  await assertAcceptablePassword(ctx, input.password, input, 'body.password')
  const passwordHash = await hashPassword(input.password, ctx.config)
  const email = normalizeEmail(input.email)
  const user = { id: randomUUID(), username: input.username, email, passwordHash, role: input.role ?? 'user' }
  const outcome = await ctx.sql.begin(async (tx) => {
    const inserted = await users.insertUserIfFree(tx, ctx.cipher, user)
    if (inserted) {
      // The first link counts against the account's verification mails, as a resend does.
      if (await spendAccountBudget(ctx, 'mail', `verify:${inserted.id}`, true)) {
        await sendVerification(ctx, tx, inserted)
      }
      await ctx.audit('auth.register', inserted.id, { role: inserted.role }, tx)
      return inserted
    }
    const holders = await users.findRegistrationHolders(tx, ctx.cipher, user)
    if (holders.some((h) => h.sameUsername)) return 'username' as const
    if (options.revealTakenEmail) return 'email' as const
    const owner = holders[0]
    if (owner && (await spendAccountBudget(ctx, 'mail', `register:${owner.id}`, true))) {
      const data = { username: owner.username }
      await queueMail(ctx, tx, { template: 'registration-attempt', userId: owner.id, to: owner.email, data })
    }
    await ctx.audit('auth.register.existing_email', owner?.id ?? null, {}, tx)
    return null
  })
  if (outcome === 'username' || outcome === 'email') {
    throw conflict(
      outcome === 'email' ? 'That email is already registered.' : 'That username is taken.',
      'conflict',
      [{ path: `body.${outcome}`, message: 'is already in use' }],
    )
  }
  if (outcome) return toPublicUser(outcome)
  const { id, username, role } = user
  return { id, username, email, role, emailVerified: false, createdAt: new Date().toISOString() }
}

/** The signed-in user's account, from the row the principal check read with the session: no query. */
export function getCurrentUser(ctx: Pick<Reader, 'cipher'>, principal: sessionsRepo.Principal): PublicUser {
  return toPublicUser(users.userOfPrincipal(ctx.cipher, principal))
}

/**
 * Re-authenticates with the current password, then ends every other session (ASVS 7.4.3). The check
 * spends the sign-in budgets, so a stolen session is no unthrottled password oracle (ASVS 6.3.1).
 */
export async function changePassword(
  ctx: UsersContext,
  principal: { userId: string; sessionId: string },
  body: PasswordChangeBody,
): Promise<void> {
  await ctx.throttle?.limiter.admitClient(ctx.throttle.client)
  const user = await users.findUserById(ctx.sql, ctx.cipher, principal.userId)
  const budget = budgetOf(ctx.throttle, user)
  const ok = await checkWithinBudget(ctx.throttle, budget, () =>
    verifyPassword(body.currentPassword, user?.passwordHash, ctx.config),
  )
  if (!user || !ok) {
    await ctx.audit('auth.password.change_failed', principal.userId, { reason: 'bad_password' })
    throw forbidden('The current password is incorrect.', 'invalid-current-password')
  }
  // Checked once the caller has proved the current password: the policy is no oracle for a stolen token.
  await assertAcceptablePassword(ctx, body.newPassword, { ...user, userId: user.id }, 'body.newPassword')
  const hash = await hashPassword(body.newPassword, ctx.config)
  await ctx.sql.begin(async (tx) => {
    await users.updatePasswordHash(tx, principal.userId, hash)
    // A sign-in half done with the old password (waiting for its code) cannot finish with it.
    await deleteChallenges(tx, principal.userId)
    // A pending email change may come from a session this change ends (OWASP ASVS 5.0 7.4.3).
    await deleteTokens(tx, principal.userId, ['email_change'])
    const revoked = await sessionsRepo.revokeSessions(
      tx,
      { userId: principal.userId, exceptSessionId: principal.sessionId },
      'password_changed',
    )
    await ctx.audit('auth.password.changed', principal.userId, { sessionsRevoked: revoked.length }, tx)
    // API keys end with the password that made them, unless configured otherwise (issue 16).
    if (ctx.config.API_KEYS_REVOKE_ON_PASSWORD_CHANGE) {
      await revokeKeysOf(ctx, tx, principal.userId, 'password_changed')
    }
    // The owner hears of it at their address, in case it was not them (OWASP ASVS 5.0 6.3.7).
    await notify(ctx, tx, user, 'password-changed')
  })
}

/** A profile for any signed-in user; the email only for the user themself or an admin (ASVS 8.2.3). */
export async function getProfile(
  ctx: Reader,
  viewer: { userId: string; role: Role },
  username: string,
): Promise<Profile> {
  const row = await users.findUserByUsername(ctx.sql, ctx.cipher, username)
  if (!row) throw notFound()
  const profile: Profile = {
    id: row.id,
    username: row.username,
    role: row.role,
    createdAt: row.createdAt.toISOString(),
  }
  if (viewer.userId === row.id || viewer.role === 'admin') {
    profile.email = row.email
    profile.emailVerified = row.emailVerifiedAt !== null
  }
  return profile
}
