import type { Sql, TransactionSql } from 'postgres'

/** SQL for passkeys: webauthn_credentials and the ceremonies' webauthn_challenges (migration 0009). */

type Db = Sql | TransactionSql

export type ChallengePurpose = 'register' | 'login'

export interface ChallengeRow {
  purpose: ChallengePurpose
  userId: string | null
  named: boolean
  expired: boolean
}

/**
 * Stores a challenge's hash. Expired rows go first, so unlimited option requests cannot grow the table
 * past what lives within one TTL (and a user keeps one pending registration).
 */
export async function insertChallenge(
  tx: TransactionSql,
  c: { hash: Buffer; purpose: ChallengePurpose; userId: string | null; named: boolean; ttlSeconds: number },
): Promise<void> {
  await tx`delete from webauthn_challenges where expires_at < now()`
  if (c.purpose === 'register' && c.userId) {
    await tx`delete from webauthn_challenges where user_id = ${c.userId} and purpose = 'register'`
  }
  await tx`
    insert into webauthn_challenges (challenge_hash, purpose, user_id, named, expires_at)
    values (${c.hash}, ${c.purpose}, ${c.userId}, ${c.named}, now() + make_interval(secs => ${c.ttlSeconds}))
  `
}

/** Takes a challenge: the delete decides, so one challenge serves one ceremony, even under a race. */
export async function consumeChallenge(db: Db, hash: Buffer): Promise<ChallengeRow | undefined> {
  const [row] = await db<ChallengeRow[]>`
    delete from webauthn_challenges where challenge_hash = ${hash}
    returning purpose, user_id, named, expires_at <= now() as expired
  `
  return row
}

export interface CredentialRow {
  id: string
  userId: string
  credentialId: Buffer
  publicKey: Buffer
  counter: string
  transports: string[]
  backupEligible: boolean
  backedUp: boolean
  name: string
  createdAt: Date
  lastUsedAt: Date | null
}

export async function findCredential(db: Db, credentialId: Buffer): Promise<CredentialRow | undefined> {
  const [row] = await db<CredentialRow[]>`
    select id, user_id, credential_id, public_key, counter, transports, backup_eligible, backed_up,
      name, created_at, last_used_at
    from webauthn_credentials where credential_id = ${credentialId}
  `
  return row
}

export function listCredentials(db: Db, userId: string): Promise<CredentialRow[]> {
  return db<CredentialRow[]>`
    select id, user_id, credential_id, public_key, counter, transports, backup_eligible, backed_up,
      name, created_at, last_used_at
    from webauthn_credentials where user_id = ${userId} order by created_at, id
  `
}

export async function countCredentials(db: Db, userId: string): Promise<number> {
  const [row] = await db<{ n: number }[]>`
    select count(*)::int as n from webauthn_credentials where user_id = ${userId}
  `
  return row?.n ?? 0
}

export type NewCredential = Omit<CredentialRow, 'createdAt' | 'lastUsedAt' | 'counter'> & {
  counter: number
  aaguid: string | null
}

/** Inserts a credential; undefined when its credential id is registered already (to anyone). */
export async function insertCredential(db: Db, c: NewCredential): Promise<CredentialRow | undefined> {
  const [row] = await db<CredentialRow[]>`
    insert into webauthn_credentials (id, user_id, credential_id, public_key, counter, transports,
      backup_eligible, backed_up, aaguid, name)
    values (${c.id}, ${c.userId}, ${c.credentialId}, ${c.publicKey}, ${c.counter}, ${c.transports},
      ${c.backupEligible}, ${c.backedUp}, ${c.aaguid}, ${c.name})
    on conflict (credential_id) do nothing
    returning id, user_id, credential_id, public_key, counter, transports, backup_eligible, backed_up,
      name, created_at, last_used_at
  `
  return row
}

/**
 * Records a use: the new counter only if it moved forward (or both are 0, an authenticator without
 * a counter), checked by the update itself, so two racing assertions cannot both pass (WebAuthn L3 §6.1.1).
 */
export async function recordUse(
  db: Db,
  id: string,
  use: { counter: number; backedUp: boolean },
): Promise<boolean> {
  const rows = await db`
    update webauthn_credentials
    set counter = ${use.counter}, backed_up = ${use.backedUp}, last_used_at = now()
    where id = ${id} and (counter < ${use.counter} or (counter = 0 and ${use.counter}::bigint = 0))
    returning id
  `
  return rows.length === 1
}

export async function renameCredential(db: Db, userId: string, id: string, name: string) {
  const [row] = await db<CredentialRow[]>`
    update webauthn_credentials set name = ${name} where id = ${id} and user_id = ${userId}
    returning id, user_id, credential_id, public_key, counter, transports, backup_eligible, backed_up,
      name, created_at, last_used_at
  `
  return row
}

/** Deletes one of the user's credentials: its name, or undefined when the user has no such one. */
export async function deleteCredential(db: Db, userId: string, id: string): Promise<string | undefined> {
  const [row] = await db<{ name: string }[]>`
    delete from webauthn_credentials where id = ${id} and user_id = ${userId} returning name
  `
  return row?.name
}
