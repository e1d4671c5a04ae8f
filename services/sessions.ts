import { forbidden, invalidCredentials, invalidRefreshToken, notFound } from '../lib/errors.js'
import * as repo from '../repositories/sessions.js'
import { findUserByLogin, lockIfPasswordCurrent, replacePasswordHash } from '../repositories/users.js'
import type { AccessClaims, LoginBody, PublicUser } from '../schemas/auth.js'
import type { ServiceContext } from './context.js'
import { hashPassword, needsRehash, verifyPassword } from './passwords.js'
import { hashRefreshToken, newRefreshToken, REFRESH_TOKEN_PATTERN } from './refresh-tokens.js'
import { toPublicUser } from './users.js'

/** Session rules: login, refresh-token rotation with reuse detection, logout, session lists. */

type SessionsContext = Pick<
  ServiceContext,
  'sql' | 'config' | 'sign' | 'audit' | 'origin' | 'throttle' | 'cipher'
>

export interface Tokens {
  accessToken: string
  expiresIn: number
  /** Absent when a concurrent refresh inside the grace window gets only a new access token. */
  refreshToken?: string
  /** Seconds until the refresh token expires (its cookie's Max-Age). */
  refreshExpiresIn?: number
}

/** An access token for a principal: its user, current role and session. */
function accessFor(
  ctx: SessionsContext,
  principal: repo.Principal,
): Pick<Tokens, 'accessToken' | 'expiresIn'> {
  const { userId: sub, username, role, sessionId: sid } = principal
  const claims: AccessClaims = { sub, username, role, sid }
  return { accessToken: ctx.sign(claims), expiresIn: ctx.config.ACCESS_TOKEN_TTL_SECONDS }
}

/** A new access token for a session, from the session's current state (live, role, enabled). */
async function accessForSession(ctx: SessionsContext, sessionId: string, userId: string): Promise<Tokens> {
  const principal = await repo.findPrincipal(ctx.sql, sessionId, userId)
  if (!principal) throw invalidRefreshToken()
  return accessFor(ctx, principal)
}

/**
 * One answer for unknown users and wrong passwords, with a dummy hash compare for the former
 * (OWASP ASVS 6.3.8); a disabled account is told so only after a correct password.
 */
export async function login(ctx: SessionsContext, body: LoginBody): Promise<Tokens & { user: PublicUser }> {
  const throttle = ctx.throttle?.limiter
  await throttle?.admitClient(ctx.throttle?.client ?? '')
  const user = await findUserByLogin(ctx.sql, ctx.cipher, body.username)
  const account = user ? `user:${user.id}` : `name:${body.username.trim().toLowerCase()}`
  await throttle?.reserveAccount(account)
  const ok = await verifyPassword(body.password, user?.passwordHash, ctx.config)
  if (!user || !ok) {
    await ctx.audit('auth.login.failure', user?.id ?? null, {
      reason: user ? 'bad_password' : 'unknown_user',
    })
    throw invalidCredentials()
  }
  await throttle?.release(account)
  if (user.disabled) {
    await ctx.audit('auth.login.failure', user.id, { reason: 'disabled' })
    throw forbidden('This account is disabled.', 'account-disabled')
  }
  // A legacy plain-bcrypt hash or another cost: rehashed now, while the password is at hand.
  let currentHash = user.passwordHash
  if (needsRehash(user.passwordHash, ctx.config.BCRYPT_COST)) {
    const next = await hashPassword(body.password, ctx.config)
    if (await replacePasswordHash(ctx.sql, user.id, user.passwordHash, next)) currentHash = next
  }
  const { token, hash } = newRefreshToken()
  const { sessionId, refreshExpiresIn } = (await ctx.sql.begin(async (tx) => {
    // The password verified must still be the account's when the session is made: a change that
    // committed meanwhile (and revoked every session) wins (OWASP ASVS 5.0 7.4.3).
    if (!(await lockIfPasswordCurrent(tx, user.id, currentHash))) {
      await ctx.audit('auth.login.failure', user.id, { reason: 'password_changed' }, tx)
      return null
    }
    const session = await repo.insertSession(tx, ctx.cipher, {
      userId: user.id,
      idleSeconds: ctx.config.REFRESH_TOKEN_TTL_SECONDS,
      maxAgeSeconds: ctx.config.SESSION_MAX_AGE_SECONDS,
      ...ctx.origin,
    })
    const refreshExpiresIn = await repo.insertRefreshToken(tx, ctx.cipher, {
      sessionId: session.id,
      parentId: null,
      userId: user.id,
      tokenHash: hash,
      idleSeconds: ctx.config.REFRESH_TOKEN_TTL_SECONDS,
      ...ctx.origin,
    })
    await ctx.audit('auth.login.success', user.id, { sessionId: session.id }, tx)
    return { sessionId: session.id, refreshExpiresIn }
  })) ?? { sessionId: undefined, refreshExpiresIn: undefined }
  if (!sessionId || refreshExpiresIn === undefined) throw invalidCredentials()
  return {
    ...accessFor(ctx, { userId: user.id, username: user.username, role: user.role, sessionId }),
    refreshToken: token,
    refreshExpiresIn,
    user: toPublicUser(user),
  }
}

/**
 * Rotation with reuse detection (RFC 9700 §4.14.2): a live token is consumed atomically and replaced
 * by its child. A consumed token presented again is either a racing tab (inside the grace window,
 * and only the immediate parent of the live token: a new access token, no new refresh token) or a
 * replay, which revokes the whole family.
 */
export async function refresh(ctx: SessionsContext, presented: string | undefined): Promise<Tokens> {
  if (!presented || !REFRESH_TOKEN_PATTERN.test(presented)) throw invalidRefreshToken()
  const hash = hashRefreshToken(presented)
  const { token, hash: childHash } = newRefreshToken()
  const rotated = await ctx.sql.begin(async (tx) => {
    const claimed = await repo.claimRefreshToken(tx, hash)
    if (!claimed) return null
    const expiresIn = await repo.insertRefreshToken(tx, ctx.cipher, {
      sessionId: claimed.sessionId,
      parentId: claimed.id,
      userId: claimed.userId,
      tokenHash: childHash,
      idleSeconds: ctx.config.REFRESH_TOKEN_TTL_SECONDS,
      ...ctx.origin,
    })
    await repo.touchSession(tx, claimed.sessionId, ctx.config.REFRESH_TOKEN_TTL_SECONDS)
    return { ...claimed, expiresIn }
  })
  // The claim returned the principal as it stood under the session lock: no second lookup.
  if (rotated) return { ...accessFor(ctx, rotated), refreshToken: token, refreshExpiresIn: rotated.expiresIn }
  const state = await repo.findTokenState(ctx.sql, hash)
  // A consumed token is reuse even after its own expiry (while its session lives): a stolen one replayed late.
  if (!state || state.revokedAt || !state.sessionLive || !state.usedAt) throw invalidRefreshToken()
  const grace = ctx.config.REFRESH_REUSE_GRACE_SECONDS
  if (state.parentOfLive && (state.usedSecondsAgo ?? Number.POSITIVE_INFINITY) <= grace) {
    return accessForSession(ctx, state.sessionId, state.userId)
  }
  await ctx.sql.begin(async (tx) => {
    const family = { userId: state.userId, sessionId: state.sessionId }
    await repo.revokeSessions(tx, family, 'refresh_token_reuse')
    await ctx.audit('auth.refresh.reuse_detected', state.userId, { sessionId: state.sessionId }, tx)
  })
  throw invalidRefreshToken()
}

/** Ends the session named by the refresh token or the access token; nothing to end is fine too. */
export async function logout(
  ctx: SessionsContext,
  by: { refreshToken?: string | undefined; principal?: { userId: string; sessionId: string } | null },
): Promise<void> {
  let target = by.principal ?? null
  if (!target && by.refreshToken && REFRESH_TOKEN_PATTERN.test(by.refreshToken)) {
    const state = await repo.findTokenState(ctx.sql, hashRefreshToken(by.refreshToken))
    if (state) target = { userId: state.userId, sessionId: state.sessionId }
  }
  if (!target) return
  const session = target
  await ctx.sql.begin(async (tx) => {
    const revoked = await repo.revokeSessions(tx, session, 'logout')
    if (revoked.length > 0)
      await ctx.audit('auth.logout', session.userId, { sessionId: session.sessionId }, tx)
  })
}

export async function logoutAll(ctx: SessionsContext, userId: string): Promise<void> {
  await ctx.sql.begin(async (tx) => {
    const revoked = await repo.revokeSessions(tx, { userId }, 'logout_all')
    await ctx.audit('auth.logout_all', userId, { sessionsRevoked: revoked.length }, tx)
  })
}

export async function listSessions(
  ctx: Pick<ServiceContext, 'sql' | 'cipher'>,
  principal: { userId: string; sessionId: string },
) {
  const rows = await repo.listLiveSessions(ctx.sql, ctx.cipher, principal.userId)
  return rows.map((s) => ({
    id: s.id,
    createdAt: s.createdAt.toISOString(),
    lastUsedAt: s.lastUsedAt.toISOString(),
    userAgent: s.userAgent,
    ip: s.ip,
    current: s.id === principal.sessionId,
  }))
}

/** Only the user's own session can be revoked; another user's is indistinguishable from none. */
export async function revokeSession(ctx: SessionsContext, userId: string, sessionId: string): Promise<void> {
  await ctx.sql.begin(async (tx) => {
    const revoked = await repo.revokeSessions(tx, { userId, sessionId }, 'revoked_by_user')
    if (revoked.length === 0) throw notFound()
    await ctx.audit('auth.session.revoked', userId, { sessionId }, tx)
  })
}
