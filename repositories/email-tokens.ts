import type { Sql, TransactionSql } from 'postgres'
import type { FieldCipher } from '../lib/field-crypto.js'

/** SQL for tokens sent by mail (verification, password reset, email change). Only hashes are stored. */

type Db = Sql | TransactionSql

export type TokenPurpose = 'verify_email' | 'password_reset' | 'email_change'

export interface EmailToken {
  id: string
  userId: string
  purpose: TokenPurpose
  /** The address the token proves (decrypted), or null. */
  email: string | null
  failures: number
}

const emailAt = (id: string) => ({ table: 'email_tokens', column: 'email', rowId: id })

/**
 * Stores a new token for the user and purpose. Earlier unused tokens of that purpose die: only the
 * newest link works (a mail that arrives late cannot be used over a newer one).
 */
export async function insertToken(
  tx: Db,
  cipher: FieldCipher,
  token: {
    id: string
    userId: string
    purpose: TokenPurpose
    hash: Buffer
    email: string | null
    ttlSeconds: number
  },
): Promise<void> {
  await tx`delete from email_tokens where user_id = ${token.userId} and purpose = ${token.purpose} and used_at is null`
  await tx`
    insert into email_tokens (id, user_id, purpose, token_hash, email, expires_at)
    values (
      ${token.id}, ${token.userId}, ${token.purpose}, ${token.hash},
      ${cipher.encrypt(token.email, emailAt(token.id))}, now() + make_interval(secs => ${token.ttlSeconds})
    )
  `
}

/**
 * The live token with this hash (unused, unexpired, fewer than `maxFailures` wrong codes), locked
 * for the rest of the transaction: of two requests with one token, the second waits and then finds
 * it spent.
 */
export async function lockLiveToken(
  tx: TransactionSql,
  cipher: FieldCipher,
  hash: Buffer,
  maxFailures = 5,
): Promise<EmailToken | undefined> {
  const [row] = await tx<EmailToken[]>`
    select id, user_id, purpose, email, failures from email_tokens
    where token_hash = ${hash} and used_at is null and expires_at > now() and failures < ${maxFailures}
    for update
  `
  return row && { ...row, email: cipher.decrypt(row.email, emailAt(row.id)) }
}

export async function spendToken(tx: Db, id: string): Promise<void> {
  await tx`update email_tokens set used_at = now() where id = ${id}`
}

/** One more wrong code sent with the token; returns the count. */
export async function failToken(tx: Db, id: string): Promise<number> {
  const [row] = await tx<{ failures: number }[]>`
    update email_tokens set failures = failures + 1 where id = ${id} returning failures
  `
  return row?.failures ?? 0
}

/** Removes the user's unused tokens of these purposes (e.g. reset links after the address changed). */
export async function deleteTokens(tx: Db, userId: string, purposes: TokenPurpose[]): Promise<void> {
  await tx`delete from email_tokens where user_id = ${userId} and purpose in ${tx(purposes)} and used_at is null`
}

/**
 * The live token with this hash, read without a lock: who it belongs to, so a transaction can lock
 * that user's row before the token (the house order: user, then what hangs off it).
 */
export async function findLiveToken(
  db: Db,
  hash: Buffer,
  maxFailures = 5,
): Promise<Pick<EmailToken, 'id' | 'userId' | 'purpose'> | undefined> {
  const [row] = await db<Pick<EmailToken, 'id' | 'userId' | 'purpose'>[]>`
    select id, user_id, purpose from email_tokens
    where token_hash = ${hash} and used_at is null and expires_at > now() and failures < ${maxFailures}
  `
  return row
}
