import type { Sql, TransactionSql } from 'postgres'

/** SQL over every encrypted column at once, for encrypting old plaintext and re-encrypting under a new key. */

/** Where personal data is stored encrypted (lib/field-crypto.ts). */
export const ENCRYPTED_COLUMNS = [
  { table: 'users', column: 'email' },
  { table: 'sessions', column: 'ip' },
  { table: 'sessions', column: 'user_agent' },
  { table: 'refresh_tokens', column: 'ip' },
  { table: 'refresh_tokens', column: 'user_agent' },
  { table: 'audit_events', column: 'ip' },
  { table: 'audit_events', column: 'user_agent' },
  { table: 'mfa_totp', column: 'secret' },
  { table: 'email_tokens', column: 'email' },
  { table: 'outbox', column: 'recipient' },
  { table: 'outbox', column: 'payload' },
] as const

export type EncryptedColumn = (typeof ENCRYPTED_COLUMNS)[number]

/** Values from before encryption carry this mark (migration 0004): only they are ever taken as plaintext. */
export const LEGACY_MARK = 'plain:'

/**
 * Locks a batch of rows to re-encrypt: with `prefix`, those whose value is not under it, after `after`
 * in id order (so a row that cannot be done is passed, not fetched again); without, the marked
 * plaintext. Rows another run holds are skipped, so two runs share the work instead of waiting.
 */
export async function lockBatch(
  tx: TransactionSql,
  place: EncryptedColumn,
  which: { legacy: true } | { prefix: string; after: string },
  limit: number,
): Promise<{ id: string; value: string }[]> {
  const column = tx(place.column)
  const filter =
    'legacy' in which
      ? tx`left(${column}, ${LEGACY_MARK.length}) = ${LEGACY_MARK}`
      : tx`left(${column}, ${which.prefix.length}) <> ${which.prefix} and id > ${which.after}::uuid`
  return tx<{ id: string; value: string }[]>`
    select id, ${column} as value from ${tx(place.table)}
    where ${column} is not null and ${filter}
    order by id
    limit ${limit}
    for update skip locked
  `
}

export async function writeValue(
  tx: TransactionSql,
  place: EncryptedColumn,
  id: string,
  value: string,
  emailIndex?: Buffer,
): Promise<void> {
  await tx`
    update ${tx(place.table)} set ${tx(place.column)} = ${value}
      ${emailIndex ? tx`, email_index = ${emailIndex}` : tx``}
    where id = ${id}
  `
}

/** How many values are not yet under `prefix`, per column (progress and the operator's check). */
export async function countStale(sql: Sql, place: EncryptedColumn, prefix: string): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from ${sql(place.table)}
    where ${sql(place.column)} is not null and left(${sql(place.column)}, ${prefix.length}) <> ${prefix}
  `
  return row?.n ?? 0
}
