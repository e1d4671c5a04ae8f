import { randomUUID } from 'node:crypto'
import type { Sql, TransactionSql } from 'postgres'
import type { FieldCipher } from '../lib/field-crypto.js'

/** SQL for second factors: TOTP authenticators, recovery codes and sign-in challenges. */

type Db = Sql | TransactionSql

const secretAt = (rowId: string) => ({ table: 'mfa_totp', column: 'secret', rowId })

export interface TotpRow {
  id: string
  sessionId: string
  secret: string
  confirmed: boolean
}

/** The user's authenticator with its secret decrypted, pending or confirmed. */
export async function findTotp(db: Db, cipher: FieldCipher, userId: string): Promise<TotpRow | undefined> {
  const [row] = await db<TotpRow[]>`
    select id, session_id, secret, confirmed_at is not null as confirmed from mfa_totp where user_id = ${userId}
  `
  return row && { ...row, secret: cipher.decrypt(row.secret, secretAt(row.id)) }
}

/** Whether the user has a confirmed authenticator (the sign-in then takes a second step). */
export async function hasConfirmedTotp(db: Db, userId: string): Promise<boolean> {
  const rows = await db`select 1 from mfa_totp where user_id = ${userId} and confirmed_at is not null`
  return rows.length === 1
}

/**
 * Replaces a pending authenticator with a new one; false when a confirmed one exists (it must be
 * removed first). The secret is encrypted and bound to the new row.
 */
export async function insertPendingTotp(
  tx: TransactionSql,
  cipher: FieldCipher,
  p: { userId: string; sessionId: string; secret: string },
) {
  await tx`delete from mfa_totp where user_id = ${p.userId} and confirmed_at is null`
  const id = randomUUID()
  const secret = cipher.encrypt(p.secret, secretAt(id))
  const rows = await tx`
    insert into mfa_totp (id, user_id, session_id, secret) values (${id}, ${p.userId}, ${p.sessionId}, ${secret})
    on conflict (user_id) do nothing
    returning id
  `
  return rows.length === 1
}

/** Confirms the pending authenticator `id` (fresh enough) at the step its first code came from. */
export async function confirmTotp(
  tx: TransactionSql,
  userId: string,
  id: string,
  step: number,
  maxAgeSeconds: number,
): Promise<boolean> {
  const rows = await tx`
    update mfa_totp set confirmed_at = now(), last_step = ${step}
    where id = ${id} and user_id = ${userId} and confirmed_at is null
      and created_at > now() - make_interval(secs => ${maxAgeSeconds})
    returning id
  `
  return rows.length === 1
}

/**
 * Accepts a code's time step once: only a step later than every step accepted before (RFC 6238
 * §5.2), atomically, so two requests with one code cannot both pass.
 */
export async function acceptTotpStep(db: Db, userId: string, step: number): Promise<boolean> {
  const rows = await db`
    update mfa_totp set last_step = ${step}
    where user_id = ${userId} and confirmed_at is not null and (last_step is null or last_step < ${step})
    returning id
  `
  return rows.length === 1
}

/** Removes the authenticator and the recovery codes; true when there was a confirmed one. */
export async function deleteSecondFactors(tx: TransactionSql, userId: string): Promise<boolean> {
  await tx`delete from mfa_recovery_codes where user_id = ${userId}`
  const rows = await tx`delete from mfa_totp where user_id = ${userId} returning confirmed_at`
  return rows.some((row) => row.confirmed_at !== null)
}

export async function replaceRecoveryCodes(
  tx: TransactionSql,
  userId: string,
  hashes: Buffer[],
): Promise<void> {
  await tx`delete from mfa_recovery_codes where user_id = ${userId}`
  const rows = hashes.map((codeHash) => ({ user_id: userId, code_hash: codeHash }))
  await tx`insert into mfa_recovery_codes ${tx(rows, 'user_id', 'code_hash')}`
}

/** Spends an unused recovery code atomically; the codes left after it, or null when none matched. */
export async function useRecoveryCode(db: Db, userId: string, codeHash: Buffer): Promise<number | null> {
  const [row] = await db<{ left: number }[]>`
    with used as (
      update mfa_recovery_codes set used_at = now()
      where user_id = ${userId} and code_hash = ${codeHash} and used_at is null
      returning id
    )
    select (select count(*) from mfa_recovery_codes
            where user_id = ${userId} and used_at is null)::int - 1 as left
    from used
  `
  return row ? row.left : null
}

export async function countRecoveryCodes(db: Db, userId: string): Promise<number> {
  const [row] = await db<{ n: number }[]>`
    select count(*)::int as n from mfa_recovery_codes where user_id = ${userId} and used_at is null
  `
  return row?.n ?? 0
}

/** A sign-in's second step; the user's expired or spent challenges are cleared on the way. */
export async function insertChallenge(
  tx: TransactionSql,
  c: { userId: string; tokenHash: Buffer; ttlSeconds: number },
): Promise<void> {
  await tx`delete from mfa_challenges where user_id = ${c.userId} and (expires_at <= now() or used_at is not null)`
  await tx`
    insert into mfa_challenges (user_id, token_hash, expires_at)
    values (${c.userId}, ${c.tokenHash}, now() + make_interval(secs => ${c.ttlSeconds}))
  `
}

export interface Challenge {
  id: string
  userId: string
  /** The user's current password hash (what their device cookies are bound to). */
  passwordHash: string
}

/** The user a live challenge token belongs to: unexpired, unspent, under its failure limit. */
export async function findLiveChallenge(db: Db, tokenHash: Buffer, maxFailures: number) {
  const [row] = await db<Challenge[]>`
    select c.id, c.user_id, u.password_hash from mfa_challenges c join users u on u.id = c.user_id
    where c.token_hash = ${tokenHash} and c.used_at is null and c.expires_at > now() and c.failures < ${maxFailures}
  `
  return row
}

/** Locks a live challenge for the rest of the transaction (so one token completes one sign-in). */
export async function lockLiveChallenge(
  tx: TransactionSql,
  id: string,
  maxFailures: number,
): Promise<boolean> {
  const rows = await tx`
    select 1 from mfa_challenges
    where id = ${id} and used_at is null and expires_at > now() and failures < ${maxFailures}
    for update
  `
  return rows.length === 1
}

/** Counts a wrong code; returns the failures so far. */
export async function failChallenge(db: Db, id: string): Promise<number> {
  const [row] = await db<{ failures: number }[]>`
    update mfa_challenges set failures = failures + 1 where id = ${id} returning failures
  `
  return row?.failures ?? 0
}

export async function spendChallenge(tx: TransactionSql, id: string): Promise<void> {
  await tx`update mfa_challenges set used_at = now() where id = ${id}`
}

/** A password change or removal of the factor ends every pending second step of the user. */
export async function deleteChallenges(tx: TransactionSql, userId: string): Promise<void> {
  await tx`delete from mfa_challenges where user_id = ${userId}`
}
