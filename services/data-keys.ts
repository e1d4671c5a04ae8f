import type { Sql } from 'postgres'
import { DecryptionError, type FieldCipher, normalizeEmail } from '../lib/field-crypto.js'
import * as repo from '../repositories/encrypted-fields.js'

/** Data-key rules: every personal value ends up encrypted under the active key, in resumable batches. */

export interface ReencryptProgress {
  table: string
  column: string
  done: number
}

export interface ReencryptResult {
  done: number
  /** Values that would not decrypt (tampered, moved, or under a key no longer listed): left as they are. */
  failed: string[]
}

const FIRST_ID = '00000000-0000-0000-0000-000000000000'

/**
 * Re-encrypts under the active key, in batches: with `legacy`, the plaintext marked by migration
 * 0004 (the step after migrations at start); otherwise every value not under the active key yet
 * (`rotate-data-key`). Each batch is one short transaction with its rows locked (SKIP LOCKED), so
 * it runs online beside the service, can be stopped at any point and resumed, and a second run
 * finds nothing to do. A value that does not decrypt is reported and passed, never guessed at.
 */
export async function reencrypt(
  sql: Sql,
  cipher: FieldCipher,
  options: { batchSize?: number; legacy?: boolean; onProgress?: (p: ReencryptProgress) => void } = {},
): Promise<ReencryptResult> {
  const batchSize = options.batchSize ?? 500
  const prefix = `enc:v1:${cipher.activeKeyId}:`
  const result: ReencryptResult = { done: 0, failed: [] }
  for (const place of repo.ENCRYPTED_COLUMNS) {
    let done = 0
    let after = FIRST_ID
    for (;;) {
      const which = options.legacy ? { legacy: true as const } : { prefix, after }
      const fetched = await sql.begin(async (tx) => {
        const rows = await repo.lockBatch(tx, place, which, batchSize)
        for (const row of rows) {
          const at = { ...place, rowId: row.id }
          let plain: string
          try {
            plain = options.legacy ? row.value.slice(repo.LEGACY_MARK.length) : cipher.decrypt(row.value, at)
          } catch (error) {
            if (!(error instanceof DecryptionError)) throw error
            result.failed.push(`${place.table}.${place.column} ${row.id}`)
            continue
          }
          const isEmail = place.table === 'users' && place.column === 'email'
          const value = isEmail ? normalizeEmail(plain) : plain
          const index = isEmail ? cipher.blindIndex(value) : undefined
          await repo.writeValue(tx, place, row.id, cipher.encrypt(value, at), index)
          done += 1
        }
        return rows
      })
      after = fetched.at(-1)?.id ?? after
      if (fetched.length > 0) options.onProgress?.({ table: place.table, column: place.column, done })
      if (fetched.length < batchSize) break
    }
    result.done += done
  }
  return result
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
