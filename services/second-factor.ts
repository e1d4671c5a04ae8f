import type { Sql, TransactionSql } from 'postgres'
import { conflict, invalidMfaCode, notFound } from '../lib/errors.js'
import { matchTotp, newTotpSecret, qrSvgDataUrl, randomBase32, TOTP_CODE, totpUri } from '../lib/totp.js'
import * as mfa from '../repositories/mfa.js'
import { dropSecondFactor, revokeSessions, setSessionAmr } from '../repositories/sessions.js'
import { findUserById, lockUser } from '../repositories/users.js'
import type { AuthMethod } from '../schemas/auth.js'
import type { MfaStatus, TotpEnrolment } from '../schemas/mfa.js'
import type { ServiceContext } from './context.js'
import { notify } from './notices.js'
import { hashOpaqueToken } from './opaque-tokens.js'

/** Second-factor rules: TOTP enrolment and removal, recovery codes, and checking a code (RFC 6238; ASVS 6.5, 6.6). */

type MfaContext = Pick<ServiceContext, 'sql' | 'config' | 'audit' | 'cipher' | 'throttle'>
type Db = Sql | TransactionSql
interface Actor {
  userId: string
  username: string
  sessionId: string
}

/** ±1 time step of clock drift (RFC 6238 §5.2). */
const TOTP_WINDOW = 1
/** A pending enrolment must be confirmed within this many seconds. */
const ENROLMENT_MAX_AGE_SECONDS = 600
const RECOVERY_CODE_COUNT = 10
/** 15 random bytes are 24 base32 characters and 120 bits: enough for a plain hash (ASVS 5.0 6.5.2). */
const RECOVERY_CODE_BYTES = 15
const RECOVERY_CODE = /^[a-z2-7]{24}$/

/** A recovery code as typed: case, spaces and dashes do not matter. */
const normalizeCode = (code: string) => code.replace(/[\s-]/g, '').toLowerCase()

/** Ten fresh codes, grouped for reading (`abcdef-ghijkl-mnopqr-stuvwx`), and their hashes. */
function newRecoveryCodes(): { codes: string[]; hashes: Buffer[] } {
  const raw = Array.from({ length: RECOVERY_CODE_COUNT }, () => randomBase32(RECOVERY_CODE_BYTES))
  return {
    codes: raw.map((code) => code.match(/.{6}/g)?.join('-') ?? code),
    hashes: raw.map((code) => hashOpaqueToken(code)),
  }
}

export async function mfaStatus(ctx: MfaContext, userId: string): Promise<MfaStatus> {
  const [totp, recoveryCodesLeft] = await Promise.all([
    mfa.hasConfirmedTotp(ctx.sql, userId),
    mfa.countRecoveryCodes(ctx.sql, userId),
  ])
  return { totp, recoveryCodesLeft }
}

/** A new pending authenticator (replacing an unconfirmed one); 409 while a confirmed one exists. */
export async function startTotpEnrolment(ctx: MfaContext, actor: Actor): Promise<TotpEnrolment> {
  const secret = newTotpSecret()
  const started = await ctx.sql.begin(async (tx) => {
    await lockUser(tx, ctx.cipher, actor.userId)
    const pending = { userId: actor.userId, sessionId: actor.sessionId, secret }
    if (!(await mfa.insertPendingTotp(tx, ctx.cipher, pending))) return false
    await ctx.audit('auth.mfa.totp_enrolment_started', actor.userId, {}, tx)
    return true
  })
  if (!started) throw conflict('Two-factor authentication is already on: remove it before enrolling again.')
  const otpauthUri = totpUri(secret, actor.username, ctx.config.MFA_TOTP_ISSUER)
  return { secret, otpauthUri, qrCode: qrSvgDataUrl(otpauthUri) }
}

/**
 * Activates the pending authenticator with a code from it and returns fresh recovery codes, shown
 * once. Only the session that started the enrolment may confirm it, and wrong codes spend the
 * account's code budget. That session now counts as authenticated with a second factor, and every
 * other session ends: none of them used the new factor (OWASP ASVS 5.0 7.4.3).
 */
export async function confirmTotpEnrolment(ctx: MfaContext, actor: Actor, code: string): Promise<string[]> {
  const pending = await mfa.findTotp(ctx.sql, ctx.cipher, actor.userId)
  if (!pending || pending.confirmed || pending.sessionId !== actor.sessionId) {
    throw conflict('No enrolment is pending in this session: start one with POST /api/auth/mfa/totp.')
  }
  await ctx.throttle?.limiter.reserveCode(actor.userId)
  const step = matchTotp(pending.secret, code, TOTP_WINDOW)
  if (step === null) {
    await ctx.audit('auth.mfa.code_failed', actor.userId, { stage: 'enrolment', reason: 'wrong' })
    throw invalidMfaCode('The code does not match the new authenticator: check its clock and try again.')
  }
  const { codes, hashes } = newRecoveryCodes()
  const confirmed = await ctx.sql.begin(async (tx) => {
    const user = await lockUser(tx, ctx.cipher, actor.userId)
    if (!user) return false
    if (!(await mfa.confirmTotp(tx, actor.userId, pending.id, step, ENROLMENT_MAX_AGE_SECONDS))) return false
    await mfa.replaceRecoveryCodes(tx, actor.userId, hashes)
    await setSessionAmr(tx, actor.sessionId, ['pwd', 'otp', 'mfa'])
    const others = { userId: actor.userId, exceptSessionId: actor.sessionId }
    const revoked = await revokeSessions(tx, others, 'mfa_enrolled')
    const detail = { sessionId: actor.sessionId, sessionsRevoked: revoked.length }
    await ctx.audit('auth.mfa.totp_enrolled', actor.userId, detail, tx)
    // A change of factor is told to the owner's address (OWASP ASVS 5.0 6.3.7).
    await notify(ctx, tx, user, 'mfa-enabled')
    return true
  })
  if (!confirmed)
    throw conflict('The enrolment expired or changed: start again with POST /api/auth/mfa/totp.')
  await ctx.throttle?.limiter.releaseCode(actor.userId)
  return codes
}

/**
 * Turns two-factor off: authenticator, recovery codes and pending sign-in steps go; this session
 * keeps only `pwd`, and every other session ends (a change of factor, OWASP ASVS 5.0 7.4.3).
 */
export async function removeTotp(ctx: MfaContext, actor: Actor): Promise<void> {
  const removed = await ctx.sql.begin(async (tx) => {
    // The user row first: the order every sign-in step takes (user, then challenge, then factor).
    const user = await lockUser(tx, ctx.cipher, actor.userId)
    const existed = await mfa.deleteSecondFactors(tx, actor.userId)
    if (!user || !existed) return false
    await mfa.deleteChallenges(tx, actor.userId)
    await dropSecondFactor(tx, actor.userId)
    const others = { userId: actor.userId, exceptSessionId: actor.sessionId }
    const revoked = await revokeSessions(tx, others, 'mfa_removed')
    const detail = { sessionId: actor.sessionId, sessionsRevoked: revoked.length }
    await ctx.audit('auth.mfa.totp_removed', actor.userId, detail, tx)
    await notify(ctx, tx, user, 'mfa-disabled')
    return true
  })
  if (!removed) throw notFound()
}

export async function replaceRecoveryCodes(ctx: MfaContext, actor: Actor): Promise<string[]> {
  const { codes, hashes } = newRecoveryCodes()
  const replaced = await ctx.sql.begin(async (tx) => {
    await lockUser(tx, ctx.cipher, actor.userId)
    if (!(await mfa.hasConfirmedTotp(tx, actor.userId))) return false
    await mfa.replaceRecoveryCodes(tx, actor.userId, hashes)
    await ctx.audit('auth.mfa.recovery_codes_replaced', actor.userId, {}, tx)
    return true
  })
  if (!replaced) throw conflict('Two-factor authentication is off: enrol an authenticator first.')
  return codes
}

export type FactorCheck = { ok: true; method: AuthMethod } | { ok: false; reason: 'wrong' | 'replayed' }

export const hasSecondFactor = (db: Db, userId: string) => mfa.hasConfirmedTotp(db, userId)

/**
 * Checks a code for the user: a TOTP code, accepted once per time step, or an unused recovery
 * code, spent by this check. Run it in the transaction that acts on the result.
 */
export async function checkSecondFactor(
  ctx: MfaContext,
  db: Db,
  userId: string,
  code: string,
): Promise<FactorCheck> {
  const typed = normalizeCode(code)
  if (TOTP_CODE.test(typed)) {
    const totp = await mfa.findTotp(db, ctx.cipher, userId)
    const step = totp?.confirmed ? matchTotp(totp.secret, typed, TOTP_WINDOW) : null
    if (step === null) return { ok: false, reason: 'wrong' }
    // RFC 6238 §5.2: the verifier must not accept the second attempt of the same OTP.
    if (!(await mfa.acceptTotpStep(db, userId, step))) return { ok: false, reason: 'replayed' }
    return { ok: true, method: 'otp' }
  }
  if (!RECOVERY_CODE.test(typed)) return { ok: false, reason: 'wrong' }
  const left = await mfa.useRecoveryCode(db, userId, hashOpaqueToken(typed))
  if (left === null) return { ok: false, reason: 'wrong' }
  await ctx.audit('auth.mfa.recovery_code_used', userId, { left }, db)
  // Told in the caller's transaction, so sign-in, step-up and reset all notify, and only if they
  // commit (OWASP ASVS 5.0 6.3.7). Read here: recovery codes are rare, sign-ins with TOTP are not.
  const user = await findUserById(db, ctx.cipher, userId)
  if (user) await notify(ctx, db, user, 'recovery-code-used', { left })
  return { ok: true, method: 'recovery' }
}
