import type { Sql } from 'postgres'
import { type FieldCipher, normalizeEmail } from '../lib/field-crypto.js'
import * as repo from '../repositories/encrypted-fields.js'

/** Data-key rules: every personal value ends up encrypted under the active key, in resumable batches. */

export interface ReencryptProgress {
  table: string
  column: string
  done: number
}

/**
 * Re-encrypts, under the active key, every value that is not under it yet: plaintext (rows from
 * before encryption) and values under older keys. Each batch is one short transaction with its
 * rows locked (SKIP LOCKED), so it runs online beside the service, can be stopped at any point and
 * resumed, and a second run finds nothing to do. With `plaintextOnly`, values already encrypted
 * under any key are left as they are (the step that runs after migrations at start).
 */
export async function reencrypt(
  sql: Sql,
  cipher: FieldCipher,
  options: { batchSize?: number; plaintextOnly?: boolean; onProgress?: (p: ReencryptProgress) => void } = {},
): Promise<number> {
  const batchSize = options.batchSize ?? 500
  const target = `enc:v1:${cipher.activeKeyId}:`
  let total = 0
  for (const place of repo.ENCRYPTED_COLUMNS) {
    let done = 0
    for (;;) {
      const changed = await sql.begin(async (tx) => {
        const rows = await repo.lockStale(tx, place, options.plaintextOnly ? 'enc:v1:' : target, batchSize)
        for (const row of rows) {
          const at = { ...place, rowId: row.id }
          const plain = cipher.keyIdOf(row.value) === null ? row.value : cipher.decrypt(row.value, at)
          const isEmail = place.table === 'users' && place.column === 'email'
          const value = isEmail ? normalizeEmail(plain) : plain
          await repo.writeValue(
            tx,
            place,
            row.id,
            cipher.encrypt(value, at),
            isEmail ? cipher.blindIndex(value) : undefined,
          )
        }
        return rows.length
      })
      done += changed
      if (changed > 0) options.onProgress?.({ table: place.table, column: place.column, done })
      if (changed < batchSize) break
    }
    total += done
  }
  return total
}

/** Values not yet under the active key, by column: zero everywhere means an old key can go. */
export async function staleCounts(sql: Sql, cipher: FieldCipher): Promise<Record<string, number>> {
  const target = `enc:v1:${cipher.activeKeyId}:`
  const counts: Record<string, number> = {}
  for (const place of repo.ENCRYPTED_COLUMNS) {
    counts[`${place.table}.${place.column}`] = await repo.countStale(sql, place, target)
  }
  return counts
}
