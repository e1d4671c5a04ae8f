import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Sql, TransactionSql } from 'postgres'
import { conflict, forbidden, invalidField, notFound, unauthenticated } from '../lib/errors.js'
import * as repo from '../repositories/api-keys.js'
import type { KeyPrincipal, SessionPrincipal } from '../repositories/sessions.js'
import { userOfPrincipal } from '../repositories/users.js'
import {
  type ApiKeyItem,
  type ApiKeyScope,
  type CreateApiKeyBody,
  type CreatedApiKey,
  DEFAULT_EXPIRES_DAYS,
} from '../schemas/api-keys.js'
import type { ServiceContext } from './context.js'
import { notify } from './notices.js'

/** Scoped API keys for machine clients: `bwk_<id>_<secret>`, shown once, stored as a hash (issue 16). */

type KeysContext = Pick<ServiceContext, 'sql' | 'config' | 'audit' | 'cipher'>

/**
 * The one shape of a key: a 16-hex-character public id and a 64-hex-character (256-bit) secret. No
 * `_` or `-` inside either part, so the key parses unambiguously, selects on a double-click, and
 * secret scanners recognise the `bwk_` prefix. Anything else starting with `bwk_` is refused.
 */
export const API_KEY_PREFIX = 'bwk_'
export const API_KEY_FORMAT = new RegExp(`^${API_KEY_PREFIX}([0-9a-f]{16})_([0-9a-f]{64})$`)

export interface ParsedKey {
  id: string
  secret: string
  /** hashSecret(secret), computed once at parse: the rate limit, the check and the cache all compare it. */
  hash: Buffer
}

export function parseApiKey(token: string): ParsedKey | null {
  const match = API_KEY_FORMAT.exec(token)
  if (!match) return null
  const secret = match[2] as string
  return { id: match[1] as string, secret, hash: hashSecret(secret) }
}

/**
 * A 256-bit random secret needs no slow or salted hash: SHA-256 is the approved one-way function
 * NIST SP 800-63B-4 §3.1.2.1 asks for a high-entropy look-up secret (ASVS 5.0 11.4.2 fits passwords).
 */
export const hashSecret = (secret: string): Buffer => createHash('sha256').update(secret).digest()

export const prefixOf = (id: string) => `${API_KEY_PREFIX}${id}`

const toItem = (row: repo.ApiKeyRow): ApiKeyItem => ({
  id: row.id,
  name: row.name,
  prefix: prefixOf(row.id),
  scopes: row.scopes,
  createdAt: row.createdAt.toISOString(),
  expiresAt: row.expiresAt.toISOString(),
  lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
})

/**
 * Creates a key for the signed-in session's user. The `admin` scope only for an admin (the route
 * also applies the admin MFA rule); the key keeps the session's amr for authorize()'s MFA check.
 */
export async function createApiKey(
  ctx: KeysContext,
  principal: SessionPrincipal,
  body: CreateApiKeyBody,
): Promise<CreatedApiKey> {
  const name = body.name.trim()
  if (name.length === 0) throw invalidField('/name', 'must not be blank')
  if (body.scopes.includes('admin') && principal.role !== 'admin') {
    throw forbidden('Only an admin may create a key with the admin scope.')
  }
  const id = randomBytes(8).toString('hex')
  const secret = randomBytes(32).toString('hex')
  const row = await ctx.sql.begin(async (tx) => {
    const inserted = await repo.insertApiKey(tx, {
      id,
      userId: principal.userId,
      sessionId: principal.sessionId,
      name,
      secretHash: hashSecret(secret),
      scopes: body.scopes,
      amr: principal.amr,
      expiresInDays: body.expiresInDays ?? DEFAULT_EXPIRES_DAYS,
      max: ctx.config.API_KEYS_MAX_PER_USER,
    })
    if (!inserted || inserted === 'session-ended') return inserted
    const detail = { keyId: id, scopes: body.scopes.join(' '), sessionId: principal.sessionId }
    await ctx.audit('auth.api_key.created', principal.userId, detail, tx)
    // The owner hears of a new credential at their address, in case it was not them (ASVS 5.0 6.3.7).
    const scopes = body.scopes.join(', ')
    await notify(ctx, tx, userOfPrincipal(ctx.cipher, principal), 'api-key-created', {
      name,
      prefix: prefixOf(id),
      scopes,
    })
    return inserted
  })
  // ASVS 5.0 7.4.1: a session revoked while this request waited makes no credential that outlives it.
  if (row === 'session-ended') throw unauthenticated(true)
  if (!row) {
    const max = ctx.config.API_KEYS_MAX_PER_USER
    throw conflict(`You already hold ${max} live API keys: revoke one first.`)
  }
  const { lastUsedAt: _never, ...item } = toItem(row)
  return { ...item, key: `${prefixOf(id)}_${secret}` }
}

export async function listApiKeys(ctx: Pick<KeysContext, 'sql'>, userId: string): Promise<ApiKeyItem[]> {
  return (await repo.listApiKeys(ctx.sql, userId)).map(toItem)
}

/** Revokes one of the user's keys at once: the next request with it is refused. Another user's key is 404. */
export async function revokeApiKey(ctx: KeysContext, principal: SessionPrincipal, id: string): Promise<void> {
  await ctx.sql.begin(async (tx) => {
    const revoked = await repo.revokeApiKeys(tx, { userId: principal.userId, id }, 'revoked_by_user')
    if (revoked.length === 0) throw notFound()
    await ctx.audit('auth.api_key.revoked', principal.userId, { keyId: id, reason: 'revoked_by_user' }, tx)
  })
}

/**
 * Revokes a user's keys in the transaction of the change that causes it (owner disabled, demoted,
 * password changed or reset): all of them, or those holding `scope`. Audited when any were live.
 */
export async function revokeKeysOf(
  ctx: Pick<ServiceContext, 'audit'>,
  tx: Sql | TransactionSql,
  userId: string,
  reason: 'owner_disabled' | 'owner_demoted' | 'password_changed' | 'password_reset',
  scope?: ApiKeyScope,
): Promise<number> {
  const ids = await repo.revokeApiKeys(tx, { userId, ...(scope ? { scope } : {}) }, reason)
  if (ids.length > 0) await ctx.audit('auth.api_key.revoked', userId, { keyIds: ids.join(' '), reason }, tx)
  return ids.length
}

/** Why a key was refused, as audited (`auth.api_key.refused`). */
export type RefusalReason =
  | 'malformed'
  | 'unknown'
  | 'wrong_secret'
  | 'revoked'
  | 'expired'
  | 'owner_disabled'
  | 'route_not_allowed'
  | 'insufficient_scope'

export type KeyCheck =
  | { ok: true; principal: KeyPrincipal }
  | { ok: false; reason: RefusalReason; userId: string | null }

/**
 * The principal behind a key, read fresh on every request: revocation, expiry, disabling and
 * demotion take effect at once (ASVS 5.0 8.3.1). The secret is compared in constant time after the
 * lookup by id (ASVS 5.0 11.2.4); the owner's id is only told for a key whose secret matched.
 */
export async function checkApiKey(sql: Sql, key: ParsedKey): Promise<KeyCheck> {
  const row = await repo.findKeyWithOwner(sql, key.id)
  if (!row) return { ok: false, reason: 'unknown', userId: null }
  if (!timingSafeEqual(row.secretHash, key.hash)) {
    return { ok: false, reason: 'wrong_secret', userId: null }
  }
  const refused = row.revoked ? 'revoked' : row.expired ? 'expired' : row.disabled ? 'owner_disabled' : null
  if (refused) return { ok: false, reason: refused, userId: row.userId }
  const { id, secretHash: _hash, revoked: _r, expired: _e, disabled: _d, createdAt, ...owner } = row
  // Least privilege (ASVS 5.0 8.2.1): an admin's powers (moderation, others' emails) need the admin scope.
  const role = owner.scopes.includes('admin') ? owner.role : 'user'
  return {
    ok: true,
    principal: { ...owner, role, via: 'api-key', sessionId: null, apiKeyId: id, authTime: createdAt },
  }
}
