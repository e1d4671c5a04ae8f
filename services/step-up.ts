import { forbidden, invalidMfaCode, reauthenticationRequired } from '../lib/errors.js'
import { markAuthenticated, type SessionPrincipal } from '../repositories/sessions.js'
import { findUserById, lockIfPasswordCurrent } from '../repositories/users.js'
import type { AuthMethod } from '../schemas/auth.js'
import type { ReauthenticateBody } from '../schemas/mfa.js'
import type { ServiceContext } from './context.js'
import { budgetOf } from './login-throttle.js'
import { verifyPassword } from './passwords.js'
import { checkSecondFactor, hasSecondFactor } from './second-factor.js'
import { accessFor, type Tokens } from './sessions.js'

/** Recent authentication (step-up): sensitive actions need a sign-in from the last few minutes (ASVS 5.0 7.5.3). */

type StepUpContext = Pick<ServiceContext, 'sql' | 'config' | 'sign' | 'audit' | 'throttle' | 'cipher'>

/** Throws 401 reauthentication-required when the session's last authentication is too old for a sensitive action. */
export function assertRecentAuthentication(
  principal: SessionPrincipal,
  maxAgeSeconds: number,
  now = Date.now(),
): void {
  if (now - principal.authTime.getTime() > maxAgeSeconds * 1000) throw reauthenticationRequired(maxAgeSeconds)
}

/**
 * Proves the user again in this session: the password, and a code when two-factor is on. The
 * password check spends the same budgets as sign-in, so it is no unthrottled oracle (ASVS 6.3.1).
 * Success renews the session's auth_time and amr and signs an access token that carries them.
 */
export async function reauthenticate(
  ctx: StepUpContext,
  principal: SessionPrincipal,
  body: ReauthenticateBody,
): Promise<Pick<Tokens, 'accessToken' | 'expiresIn'>> {
  const { userId, sessionId } = principal
  await ctx.throttle?.limiter.admitClient(ctx.throttle.client)
  const user = await findUserById(ctx.sql, ctx.cipher, userId)
  const budget = budgetOf(ctx.throttle, user)
  await ctx.throttle?.limiter.reserve(budget)
  if (body.code) await ctx.throttle?.limiter.reserveCode(userId)
  const passwordOk = await verifyPassword(body.password, user?.passwordHash, ctx.config)
  type Outcome = { failed: 'password' | 'code' } | { amr: AuthMethod[]; authTime: Date }
  const outcome = await ctx.sql.begin(async (tx): Promise<Outcome> => {
    // Still the password that was verified, locked until the mark commits (a change meanwhile wins).
    if (!user || !passwordOk || !(await lockIfPasswordCurrent(tx, userId, user.passwordHash))) {
      await ctx.audit('auth.reauthenticate.failure', userId, { reason: 'bad_password', sessionId }, tx)
      return { failed: 'password' }
    }
    let amr: AuthMethod[] = ['pwd']
    if (await hasSecondFactor(tx, userId)) {
      const factor = body.code ? await checkSecondFactor(ctx, tx, userId, body.code) : null
      if (!factor?.ok) {
        const reason = factor ? factor.reason : 'missing'
        await ctx.audit('auth.mfa.code_failed', userId, { stage: 'reauthenticate', reason, sessionId }, tx)
        return { failed: 'code' }
      }
      amr = ['pwd', factor.method, 'mfa']
    }
    const authTime = await markAuthenticated(tx, sessionId, amr)
    await ctx.audit('auth.reauthenticated', userId, { sessionId, amr: amr.join(' ') }, tx)
    return { amr, authTime }
  })
  if ('failed' in outcome) {
    if (outcome.failed === 'password')
      throw forbidden('The password is incorrect.', 'invalid-current-password')
    throw invalidMfaCode(
      body.code ? undefined : 'Two-factor authentication is on: send a current code with the password.',
    )
  }
  await ctx.throttle?.limiter.release(budget)
  if (body.code) await ctx.throttle?.limiter.releaseCode(userId)
  return accessFor(ctx, { ...principal, ...outcome })
}
