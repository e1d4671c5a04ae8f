import {
  emailNotVerified,
  forbidden,
  invalidCredentials,
  invalidMfaCode,
  invalidMfaToken,
} from '../lib/errors.js'
import * as mfa from '../repositories/mfa.js'
import {
  findUserByLogin,
  lockIfPasswordCurrent,
  lockUser,
  replacePasswordHash,
  shareLockUser,
  type UserRow,
} from '../repositories/users.js'
import type { AuthMethod, LoginBody } from '../schemas/auth.js'
import type { MfaVerifyBody } from '../schemas/mfa.js'
import type { ServiceContext } from './context.js'
import { sendVerification } from './email-verification.js'
import { budgetOf, checkWithinBudget } from './login-throttle.js'
import { spendAccountBudget } from './mail.js'
import { hashOpaqueToken, newOpaqueToken } from './opaque-tokens.js'
import { hashPassword, needsRehash, verifyPassword } from './passwords.js'
import { checkSecondFactor, hasSecondFactor } from './second-factor.js'
import { type SignedIn, startSession } from './session-start.js'

/** Sign-in rules: the password step, the second-factor step, and the session they start. */

export type SignInContext = Pick<
  ServiceContext,
  'sql' | 'config' | 'sign' | 'audit' | 'origin' | 'throttle' | 'cipher' | 'devices' | 'counters'
>

/** A sign-in's second step lives 5 minutes and dies after 5 wrong codes (NIST SP 800-63B-4 §3.2.2). */
export const MFA_TOKEN_TTL_SECONDS = 300
export const MFA_MAX_FAILURES = 5

/** Printable ASCII: what a username or an email address given at sign-in may be made of. */
const ASCII = /^[\x20-\x7e]+$/

export interface MfaRequired {
  mfaRequired: true
  mfaToken: string
  expiresIn: number
}

/**
 * REQUIRE_VERIFIED_EMAIL=true: an unverified account is refused only after its correct password, so
 * the answer is no oracle (OWASP ASVS 5.0 6.3.8), and mailed a fresh link (within its mail budget),
 * so a user whose link expired is not stuck.
 */
export async function refuseUnverified(ctx: SignInContext, user: UserRow): Promise<never> {
  const mail = await spendAccountBudget(ctx, 'mail', `verify:${user.id}`, true)
  await ctx.sql.begin(async (tx) => {
    // The user row before its tokens (the house lock order): a confirmed email change holds it while
    // it kills the old address's links, and the other order deadlocks against it.
    const current = await lockUser(tx, ctx.cipher, user.id)
    if (mail && current) await sendVerification(ctx, tx, current)
    await ctx.audit('auth.login.failure', user.id, { reason: 'email_not_verified' }, tx)
  })
  throw emailNotVerified(
    'Confirm your email address first: a new confirmation link was sent to it. Follow it, then sign in again.',
  )
}

/**
 * The password step. One answer for unknown users and wrong passwords, with a dummy hash compare
 * for the former (OWASP ASVS 6.3.8); a disabled account is told so only after a correct password.
 * An account with a second factor gets a single-use mfaToken instead of a session.
 */
export async function login(ctx: SignInContext, body: LoginBody): Promise<SignedIn | MfaRequired> {
  await ctx.throttle?.limiter.admitClient(ctx.throttle.client)
  // One canonical form for the lookup and for an unknown name's budget, so the budget cannot tell
  // which names exist. Names are ASCII: any other is refused like a wrong password (ASVS 6.3.8).
  const name = body.username.trim()
  const user = ASCII.test(name) ? await findUserByLogin(ctx.sql, ctx.cipher, name) : undefined
  const budget = budgetOf(ctx.throttle, user, name)
  const ok = await checkWithinBudget(ctx.throttle, budget, () =>
    verifyPassword(body.password, user?.passwordHash, ctx.config),
  )
  if (!user || !ok) {
    await ctx.audit('auth.login.failure', user?.id ?? null, {
      reason: user ? 'bad_password' : 'unknown_user',
    })
    throw invalidCredentials()
  }
  if (user.disabled) {
    await ctx.audit('auth.login.failure', user.id, { reason: 'disabled' })
    throw forbidden('This account is disabled.', 'account-disabled')
  }
  if (ctx.config.REQUIRE_VERIFIED_EMAIL && user.emailVerifiedAt === null) await refuseUnverified(ctx, user)
  // A legacy plain-bcrypt hash or another cost: rehashed now, while the password is at hand.
  let currentHash = user.passwordHash
  if (needsRehash(user.passwordHash, ctx.config.BCRYPT_COST)) {
    const next = await hashPassword(body.password, ctx.config)
    if (await replacePasswordHash(ctx.sql, user.id, user.passwordHash, next)) currentHash = next
  }
  const challenge = newOpaqueToken()
  const result = await ctx.sql.begin(async (tx): Promise<SignedIn | MfaRequired | null> => {
    // The password verified must still be the account's when the session is made: a change that
    // committed meanwhile (and revoked every session) wins (OWASP ASVS 5.0 7.4.3).
    if (!(await lockIfPasswordCurrent(tx, user.id, currentHash))) {
      await ctx.audit('auth.login.failure', user.id, { reason: 'password_changed' }, tx)
      return null
    }
    if (!(await hasSecondFactor(tx, user.id))) {
      return startSession(tx, ctx, user, { amr: ['pwd'], passwordHash: currentHash, deviceId: budget.device })
    }
    const ttlSeconds = MFA_TOKEN_TTL_SECONDS
    await mfa.insertChallenge(tx, { userId: user.id, tokenHash: challenge.hash, ttlSeconds })
    await ctx.audit('auth.login.mfa_required', user.id, {}, tx)
    return { mfaRequired: true, mfaToken: challenge.token, expiresIn: ttlSeconds }
  })
  if (!result) throw invalidCredentials()
  return result
}

/**
 * The second step: a TOTP or recovery code for a live mfaToken. Codes spend the same failure
 * budgets as passwords and the account's code budget (ASVS 6.3.1), and the token itself dies after
 * MFA_MAX_FAILURES wrong codes.
 * The token, the user and the factor are locked in one transaction, so one token starts one session.
 */
export async function verifyMfa(ctx: SignInContext, body: MfaVerifyBody): Promise<SignedIn> {
  const found = await mfa.findLiveChallenge(ctx.sql, hashOpaqueToken(body.mfaToken), MFA_MAX_FAILURES)
  if (!found) throw invalidMfaToken()
  const budget = budgetOf(ctx.throttle, { id: found.userId, passwordHash: found.passwordHash })
  await ctx.throttle?.limiter.reserve(budget)
  await ctx.throttle?.limiter.reserveCode(found.userId)
  type Outcome = { signedIn: SignedIn } | { failures: number } | null
  const outcome = await ctx.sql.begin(async (tx): Promise<Outcome> => {
    // User first, then the challenge, then the factor: the order password changes and removals take.
    const user = await shareLockUser(tx, ctx.cipher, found.userId)
    if (!user || user.disabled || !(await mfa.lockLiveChallenge(tx, found.id, MFA_MAX_FAILURES))) return null
    const factor = await checkSecondFactor(ctx, tx, user.id, body.code)
    if (!factor.ok) {
      const failures = await mfa.failChallenge(tx, found.id)
      await ctx.audit(
        'auth.mfa.code_failed',
        user.id,
        { stage: 'sign-in', reason: factor.reason, failures },
        tx,
      )
      return { failures }
    }
    await mfa.spendChallenge(tx, found.id)
    const amr: AuthMethod[] = ['pwd', factor.method, 'mfa']
    return {
      signedIn: await startSession(tx, ctx, user, {
        amr,
        passwordHash: user.passwordHash,
        deviceId: budget.device,
      }),
    }
  })
  if (!outcome) throw invalidMfaToken()
  if ('failures' in outcome) {
    const left = MFA_MAX_FAILURES - outcome.failures
    throw left > 0 ? invalidMfaCode() : invalidMfaToken()
  }
  await ctx.throttle?.limiter.release(budget)
  await ctx.throttle?.limiter.releaseCode(found.userId)
  return outcome.signedIn
}
