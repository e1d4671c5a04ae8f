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
] as const

export type EncryptedColumn = (typeof ENCRYPTED_COLUMNS)[number]

/**
 * Locks a batch of rows whose value is not stored under `prefix` (plaintext included); rows another
 * run holds are skipped, so two runs share the work instead of waiting.
 */
export async function lockStale(
  tx: TransactionSql,
  place: EncryptedColumn,
  prefix: string,
  limit: number,
): Promise<{ id: string; value: string }[]> {
  return tx<{ id: string; value: string }[]>`
    select id, ${tx(place.column)} as value from ${tx(place.table)}
    where ${tx(place.column)} is not null and left(${tx(place.column)}, ${prefix.length}) <> ${prefix}
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
