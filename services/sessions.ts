import { invalidRefreshToken, notFound } from '../lib/errors.js'
import { deleteChallenges } from '../repositories/mfa.js'
import * as repo from '../repositories/sessions.js'
import type { AccessClaims } from '../schemas/auth.js'
import type { ServiceContext } from './context.js'
import { hashOpaqueToken, newOpaqueToken, OPAQUE_TOKEN_PATTERN } from './opaque-tokens.js'

/** Session rules: refresh-token rotation with reuse detection, logout, session lists (sign-in is services/sign-in.ts). */

type SessionsContext = Pick<ServiceContext, 'sql' | 'config' | 'sign' | 'audit' | 'origin' | 'cipher'>

export interface Tokens {
  accessToken: string
  expiresIn: number
  /** Absent when a concurrent refresh inside the grace window gets only a new access token. */
  refreshToken?: string
  /** Seconds until the refresh token expires (its cookie's Max-Age). */
  refreshExpiresIn?: number
}

/** An access token for a principal: its user, current role and session, and how it was authenticated. */
export function accessFor(
  ctx: Pick<ServiceContext, 'sign' | 'config'>,
  principal: Pick<repo.SessionPrincipal, 'userId' | 'sessionId' | 'authTime' | 'amr'>,
): Pick<Tokens, 'accessToken' | 'expiresIn'> {
  const { userId: sub, sessionId: sid, amr } = principal
  const auth_time = Math.floor(principal.authTime.getTime() / 1000)
  const claims: AccessClaims = { sub, sid, auth_time, amr }
  return { accessToken: ctx.sign(claims), expiresIn: ctx.config.ACCESS_TOKEN_TTL_SECONDS }
}

/** A new access token for a session, from the session's current state (live, role, enabled). */
async function accessForSession(ctx: SessionsContext, sessionId: string, userId: string): Promise<Tokens> {
  const principal = await repo.findPrincipal(ctx.sql, sessionId, userId)
  if (!principal) throw invalidRefreshToken()
  return accessFor(ctx, principal)
}

/**
 * Rotation with reuse detection (RFC 9700 §4.14.2): a live token is consumed atomically and replaced
 * by its child. A consumed token presented again is either a racing tab (inside the grace window,
 * and only the immediate parent of the live token: a new access token, no new refresh token) or a
 * replay, which revokes the whole family.
 */
export async function refresh(ctx: SessionsContext, presented: string | undefined): Promise<Tokens> {
  if (!presented || !OPAQUE_TOKEN_PATTERN.test(presented)) throw invalidRefreshToken()
  const hash = hashOpaqueToken(presented)
  const { token, hash: childHash } = newOpaqueToken()
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
  // The grace answer is given once per consumed token, and audited: a second replay is reuse.
  if (state.parentOfLive && (state.usedSecondsAgo ?? Number.POSITIVE_INFINITY) <= grace) {
    const granted = await ctx.sql.begin(async (tx) => {
      if (!(await repo.claimGrace(tx, state.id))) return false
      await ctx.audit('auth.refresh.grace_used', state.userId, { sessionId: state.sessionId }, tx)
      return true
    })
    if (granted) return accessForSession(ctx, state.sessionId, state.userId)
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
  if (!target && by.refreshToken && OPAQUE_TOKEN_PATTERN.test(by.refreshToken)) {
    const state = await repo.findTokenState(ctx.sql, hashOpaqueToken(by.refreshToken))
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
    // "Sign out everywhere" also ends sign-ins waiting for their code.
    await deleteChallenges(tx, userId)
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
