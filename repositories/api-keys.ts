import type { Sql, TransactionSql } from 'postgres'
import type { ApiKeyScope } from '../schemas/api-keys.js'
import type { AuthMethod, Role } from '../schemas/auth.js'

/** SQL for API keys, their batched last use and the addresses they were used from. */

type Db = Sql | TransactionSql

export interface ApiKeyRow {
  id: string
  name: string
  scopes: ApiKeyScope[]
  createdAt: Date
  expiresAt: Date
  lastUsedAt: Date | null
}

/**
 * Inserts a key unless the user already holds `max` live ones (the count and insert are one statement),
 * or the creating session ended meanwhile: 'session-ended'.
 */
export async function insertApiKey(
  db: Db,
  k: {
    id: string
    userId: string
    sessionId: string
    name: string
    secretHash: Buffer
    scopes: ApiKeyScope[]
    amr: AuthMethod[]
    expiresInDays: number
    max: number
  },
): Promise<ApiKeyRow | 'session-ended' | undefined> {
  // The user's row is locked first, so two concurrent creations cannot both pass the cap.
  await db`select id from users where id = ${k.userId} for no key update`
  // Read after the lock (a statement of its own sees what committed while it waited): a disable or a
  // password change that revoked this session has also revoked every key, so none may follow it.
  const [live] = await db`
    select 1 from sessions s join users u on u.id = s.user_id
    where s.id = ${k.sessionId} and s.user_id = ${k.userId} and s.revoked_at is null and not u.disabled
  `
  if (!live) return 'session-ended'
  const [row] = await db<ApiKeyRow[]>`
    insert into api_keys (id, user_id, name, secret_hash, scopes, amr, expires_at)
    select ${k.id}, ${k.userId}, ${k.name}, ${k.secretHash}, ${k.scopes}, ${k.amr},
           now() + make_interval(days => ${k.expiresInDays})
    where (
      select count(*) from api_keys
      where user_id = ${k.userId} and revoked_at is null and expires_at > now()
    ) < ${k.max}
    returning id, name, scopes, created_at, expires_at, last_used_at
  `
  return row
}

/** The user's live keys (revoked and expired ones are kept in the table, not listed). */
export async function listApiKeys(db: Db, userId: string): Promise<ApiKeyRow[]> {
  return db<ApiKeyRow[]>`
    select id, name, scopes, created_at, expires_at, last_used_at
    from api_keys
    where user_id = ${userId} and revoked_at is null and expires_at > now()
    order by created_at desc, id
  `
}

/** What a request with a key needs: the key's state and its owner, read fresh (ASVS 5.0 8.3.1). */
export interface KeyOwnerRow {
  id: string
  userId: string
  secretHash: Buffer
  scopes: ApiKeyScope[]
  amr: AuthMethod[]
  createdAt: Date
  revoked: boolean
  expired: boolean
  disabled: boolean
  username: string
  role: Role
  sealedEmail: string
  userCreatedAt: Date
  emailVerifiedAt: Date | null
}

export async function findKeyWithOwner(db: Db, id: string): Promise<KeyOwnerRow | undefined> {
  const [row] = await db<KeyOwnerRow[]>`
    select k.id, k.user_id, k.secret_hash, k.scopes, k.amr, k.created_at,
      k.revoked_at is not null as revoked, k.expires_at <= now() as expired, u.disabled,
      u.username, u.role, u.email as sealed_email, u.created_at as user_created_at, u.email_verified_at
    from api_keys k join users u on u.id = k.user_id
    where k.id = ${id}
  `
  return row
}

/**
 * Revokes the user's live keys (all, one by id, or those holding `scope`); returns their ids.
 * Runs in the transaction of the change that causes it.
 */
export async function revokeApiKeys(
  db: Db,
  filter: { userId: string; id?: string; scope?: ApiKeyScope },
  reason: string,
): Promise<string[]> {
  const rows = await db<{ id: string }[]>`
    update api_keys set revoked_at = now(), revoked_reason = ${reason}
    where user_id = ${filter.userId} and revoked_at is null
      ${filter.id ? db`and id = ${filter.id}` : db``}
      ${filter.scope ? db`and ${filter.scope} = any(scopes)` : db``}
    returning id
  `
  return rows.map((r) => r.id)
}

/** Writes many keys' last use in one statement (never moving it backwards). */
export async function flushLastUsed(db: Db, uses: Map<string, number>): Promise<number> {
  if (uses.size === 0) return 0
  const ids = [...uses.keys()]
  const times = [...uses.values()].map((ms) => ms / 1000)
  const rows = await db`
    update api_keys k set last_used_at = greatest(k.last_used_at, to_timestamp(u.t))
    from unnest(${ids}::text[], ${times}::float8[]) as u(id, t)
    where k.id = u.id
    returning k.id
  `
  return rows.length
}

/** Records an address for a key; true only the first time (the insert is the check). */
export async function recordKeyAddress(db: Db, keyId: string, addressHash: Buffer): Promise<boolean> {
  const rows = await db`
    insert into api_key_addresses (key_id, address_hash) values (${keyId}, ${addressHash})
    on conflict do nothing
    returning key_id
  `
  return rows.length === 1
}
