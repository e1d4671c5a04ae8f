import type { TransactionSql } from 'postgres'
import * as repo from '../repositories/sessions.js'
import type { UserRow } from '../repositories/users.js'
import type { AuthMethod, PublicUser } from '../schemas/auth.js'
import type { ServiceContext } from './context.js'
import { noticeNewDevice } from './notices.js'
import { newOpaqueToken } from './opaque-tokens.js'
import { accessFor, type Tokens } from './sessions.js'
import { toPublicUser } from './users.js'

/** The end of every sign-in (password, second factor, passkey): a new session and its first tokens. */

export type SessionStartContext = Pick<
  ServiceContext,
  'sql' | 'config' | 'sign' | 'audit' | 'origin' | 'cipher' | 'devices' | 'counters'
>

export interface SignedIn extends Tokens {
  user: PublicUser
  /** A new device cookie for this client (OWASP device cookies): its own failure budget next time. */
  deviceCookie: string
}

/**
 * Starts a session (one refresh-token family) in `tx` and signs its first access token. The device
 * cookie is bound to the password verified, and keeps the id of a device already known.
 */
export async function startSession(
  tx: TransactionSql,
  ctx: SessionStartContext,
  user: UserRow,
  how: { amr: AuthMethod[]; passwordHash: string; deviceId: string | undefined },
): Promise<SignedIn> {
  const { amr } = how
  const { token, hash } = newOpaqueToken()
  const session = await repo.insertSession(tx, ctx.cipher, {
    userId: user.id,
    amr,
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
  await ctx.audit('auth.login.success', user.id, { sessionId: session.id, amr: amr.join(' ') }, tx)
  await noticeNewDevice(ctx, tx, user, session, how.deviceId)
  const principal = { userId: user.id, sessionId: session.id, authTime: session.authTime, amr }
  return {
    ...accessFor(ctx, principal),
    refreshToken: token,
    refreshExpiresIn,
    user: toPublicUser(user),
    deviceCookie: ctx.devices.issue(user.id, how.passwordHash, how.deviceId),
  }
}
