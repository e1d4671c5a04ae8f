import { randomUUID } from 'node:crypto'
import type { Sql, TransactionSql } from 'postgres'
import { type FieldCipher, type Origin, openOrigin, sealOrigin } from '../lib/field-crypto.js'
import type { ApiKeyScope } from '../schemas/api-keys.js'
import type { AuthMethod, Role } from '../schemas/auth.js'

/** SQL for sessions and refresh tokens, and the per-request principal lookup. */

type Db = Sql | TransactionSql

/** The client's address and user agent are stored encrypted, bound to their row (lib/field-crypto.ts). */
export async function insertSession(
  db: Db,
  cipher: FieldCipher,
  s: { userId: string; idleSeconds: number; maxAgeSeconds: number; amr: AuthMethod[] } & Origin,
): Promise<{ id: string; idleExpiresAt: Date; authTime: Date }> {
  const id = randomUUID()
  const origin = sealOrigin(cipher, 'sessions', id, s)
  const [row] = await db<{ id: string; idleExpiresAt: Date; authTime: Date }[]>`
    insert into sessions (id, user_id, amr, idle_expires_at, expires_at, user_agent, ip)
    values (
      ${id}, ${s.userId}, ${s.amr},
      now() + make_interval(secs => ${s.idleSeconds}),
      now() + make_interval(secs => ${s.maxAgeSeconds}),
      ${origin.userAgent}, ${origin.ip}
    )
    returning id, idle_expires_at, auth_time
  `
  return row as { id: string; idleExpiresAt: Date; authTime: Date }
}

/** A child token never outlives its session's absolute lifetime. Returns its lifetime in seconds. */
export async function insertRefreshToken(
  db: Db,
  cipher: FieldCipher,
  t: {
    sessionId: string
    parentId: string | null
    userId: string
    tokenHash: Buffer
    idleSeconds: number
  } & Origin,
): Promise<number> {
  const id = randomUUID()
  const origin = sealOrigin(cipher, 'refresh_tokens', id, t)
  const [row] = await db<{ expiresIn: number }[]>`
    insert into refresh_tokens (id, session_id, parent_id, user_id, token_hash, expires_at, user_agent, ip)
    select ${id}, ${t.sessionId}, ${t.parentId}, ${t.userId}, ${t.tokenHash},
           least(now() + make_interval(secs => ${t.idleSeconds}), s.expires_at), ${origin.userAgent}, ${origin.ip}
    from sessions s where s.id = ${t.sessionId}
    returning greatest(0, floor(extract(epoch from expires_at - now())))::int as expires_in
  `
  return row?.expiresIn ?? 0
}

/** The consumed token, and the principal its access token is signed for. */
export interface ClaimedToken extends SessionPrincipal {
  id: string
}

/**
 * Consumes a refresh token in one conditional update: of two racing requests only one gets a row
 * (RFC 9700 §4.14.2). The session must be live and its user enabled.
 */
export async function claimRefreshToken(db: Db, tokenHash: Buffer): Promise<ClaimedToken | undefined> {
  // Session row first, then token rows: the order revokeSessions (password change, logout, admin)
  // takes them in, so a rotation racing a revocation waits instead of deadlocking.
  await db`
    select s.id from sessions s join refresh_tokens t on t.session_id = s.id
    where t.token_hash = ${tokenHash}
    for no key update of s
  `
  const [row] = await db<ClaimedToken[]>`
    update refresh_tokens t set used_at = now()
    from sessions s join users u on u.id = s.user_id
    where t.token_hash = ${tokenHash}
      and t.used_at is null and t.revoked_at is null and t.expires_at > now()
      and s.id = t.session_id and s.revoked_at is null and s.expires_at > now()
      and not u.disabled
    returning t.id, t.session_id, t.user_id, u.username, u.role, s.auth_time, s.amr
  `
  return row
}

export interface TokenState {
  id: string
  sessionId: string
  userId: string
  usedAt: Date | null
  revokedAt: Date | null
  sessionLive: boolean
  usedSecondsAgo: number | null
  /** This token's child is unused and unrevoked: it is the immediate parent of the live token. */
  parentOfLive: boolean
}

export async function findTokenState(db: Db, tokenHash: Buffer): Promise<TokenState | undefined> {
  const [row] = await db<TokenState[]>`
    select t.id, t.session_id, t.user_id, t.used_at, t.revoked_at,
           (s.revoked_at is null and s.expires_at > now() and not u.disabled) as session_live,
           extract(epoch from now() - t.used_at)::float8 as used_seconds_ago,
           exists (
             select 1 from refresh_tokens c
             where c.parent_id = t.id and c.used_at is null and c.revoked_at is null and c.expires_at > now()
           ) as parent_of_live
    from refresh_tokens t
    join sessions s on s.id = t.session_id
    join users u on u.id = t.user_id
    where t.token_hash = ${tokenHash}
  `
  return row
}

/** Takes a consumed token's one grace answer atomically; false when it was taken before. */
export async function claimGrace(db: Db, tokenId: string): Promise<boolean> {
  const rows = await db`
    update refresh_tokens set grace_used_at = now() where id = ${tokenId} and grace_used_at is null returning id
  `
  return rows.length === 1
}

export async function touchSession(db: Db, sessionId: string, idleSeconds: number): Promise<void> {
  await db`
    update sessions
    set last_used_at = now(), idle_expires_at = least(now() + make_interval(secs => ${idleSeconds}), expires_at)
    where id = ${sessionId}
  `
}

/** Revokes sessions (and every refresh token in them) matching the filter; returns their ids. */
export async function revokeSessions(
  db: Db,
  filter: { userId: string; sessionId?: string; exceptSessionId?: string },
  reason: string,
): Promise<string[]> {
  const rows = await db<{ id: string }[]>`
    update sessions set revoked_at = now(), revoked_reason = ${reason}
    where user_id = ${filter.userId} and revoked_at is null
      ${filter.sessionId ? db`and id = ${filter.sessionId}` : db``}
      ${filter.exceptSessionId ? db`and id <> ${filter.exceptSessionId}` : db``}
    returning id
  `
  const ids = rows.map((r) => r.id)
  if (ids.length > 0) {
    await db`update refresh_tokens set revoked_at = now() where session_id in ${db(ids)} and revoked_at is null`
  }
  return ids
}

/** Whether the user has a session besides `sessionId`, live or not: they have signed in before. */
export async function hasOtherSession(db: Db, userId: string, sessionId: string): Promise<boolean> {
  const [row] = await db<{ found: boolean }[]>`
    select exists (select 1 from sessions where user_id = ${userId} and id <> ${sessionId}) as found
  `
  return row?.found === true
}

export interface SessionRow {
  id: string
  createdAt: Date
  lastUsedAt: Date
  userAgent: string | null
  ip: string | null
}

export async function listLiveSessions(db: Db, cipher: FieldCipher, userId: string): Promise<SessionRow[]> {
  const rows = await db<SessionRow[]>`
    select id, created_at, last_used_at, user_agent, ip
    from sessions
    where user_id = ${userId} and revoked_at is null and expires_at > now() and idle_expires_at > now()
    order by last_used_at desc
    limit 100
  `
  return rows.map((row) => ({ ...row, ...openOrigin(cipher, 'sessions', row.id, row) }))
}

/** Who sends a request: a signed-in session, or an API key (repositories/api-keys.ts). */
export type Principal = SessionPrincipal | KeyPrincipal

/** A session's principal: the only kind that logout, session lists, step-up and MFA enrolment accept. */
export interface SessionPrincipal extends PrincipalBase {
  via: 'session'
  sessionId: string
}

/**
 * An API key's principal. `sessionId: null` makes passing it where a session is needed a compile
 * error; its authTime is the key's creation, and requireRecentAuth refuses it whatever its age.
 */
export interface KeyPrincipal extends PrincipalBase {
  via: 'api-key'
  sessionId: null
  apiKeyId: string
  scopes: ApiKeyScope[]
}

interface PrincipalBase {
  userId: string
  username: string
  role: Role
  /** When the user last proved who they are in this session (sign-in or re-authentication). */
  authTime: Date
  amr: AuthMethod[]
  /**
   * The rest of the user's row, read by the same statement so `GET /api/users/me` needs no second
   * round trip: the email as stored (sealed; repositories/users.ts opens it) and the creation time.
   */
  sealedEmail: string
  userCreatedAt: Date
  emailVerifiedAt: Date | null
}

/**
 * The per-request check behind every access token: its session is live and its user enabled, and
 * the role is read fresh, so revocation, demotion and disabling take effect at once (ASVS 7.4.1).
 */
export async function findPrincipal(
  db: Db,
  sessionId: string,
  userId: string,
): Promise<SessionPrincipal | undefined> {
  const [row] = await db<SessionPrincipal[]>`
    select 'session' as via, u.id as user_id, u.username, u.role, s.id as session_id, s.auth_time, s.amr,
      u.email as sealed_email, u.created_at as user_created_at, u.email_verified_at
    from sessions s join users u on u.id = s.user_id
    where s.id = ${sessionId} and s.user_id = ${userId}
      and s.revoked_at is null and s.expires_at > now() and s.idle_expires_at > now()
      and not u.disabled
  `
  return row
}

/** Marks a session as authenticated just now, by `amr` (step-up, or a second factor added to it). */
export async function markAuthenticated(db: Db, sessionId: string, amr: AuthMethod[]): Promise<Date> {
  const [row] = await db<{ authTime: Date }[]>`
    update sessions set auth_time = now(), amr = ${amr} where id = ${sessionId} returning auth_time
  `
  return row?.authTime ?? new Date()
}

/** Records how a session is authenticated now, without renewing its auth_time (a factor added to it). */
export async function setSessionAmr(db: Db, sessionId: string, amr: AuthMethod[]): Promise<void> {
  await db`update sessions set amr = ${amr} where id = ${sessionId}`
}

/**
 * The user's sessions lose a second factor that no longer exists: those that used it (otp, recovery)
 * fall back to `pwd`; a passkey session keeps its amr, as its factor still stands (RFC 8176).
 */
export async function dropSecondFactor(db: Db, userId: string): Promise<void> {
  await db`
    update sessions set amr = '{pwd}'
    where user_id = ${userId} and revoked_at is null and amr && '{otp,recovery}'::text[]
  `
}
