import type { Sql } from 'postgres'
import { flushLastUsed, recordKeyAddress } from '../repositories/api-keys.js'

/**
 * What using a key costs the database: no write per request. The last use of each key is kept in
 * memory and written for all keys in one statement every API_KEY_LAST_USED_FLUSH_MS and on close;
 * an address is written only the first time a key is seen from it (then remembered in a bounded set).
 */
export interface KeyUsage {
  /** Notes a use of the key now (in memory only). */
  used(keyId: string, at?: number): void
  /** Uses noted since the last flush. */
  pending(): number
  /** Writes the noted uses in one statement; returns how many rows it updated. */
  flush(sql: Sql): Promise<number>
  /** True the first time `addressHash` is seen for the key (the database decides; a cache spares the write). */
  firstFromAddress(sql: Sql, keyId: string, addressHash: Buffer): Promise<boolean>
}

/** How many (key, address) pairs a process remembers before forgetting the oldest. */
export const SEEN_ADDRESSES_MAX = 10_000

export function createKeyUsage(seenMax = SEEN_ADDRESSES_MAX): KeyUsage {
  let uses = new Map<string, number>()
  const seen = new Set<string>()

  function remember(entry: string) {
    seen.add(entry)
    if (seen.size > seenMax) seen.delete(seen.values().next().value as string)
  }

  return {
    used(keyId, at = Date.now()) {
      uses.set(keyId, Math.max(at, uses.get(keyId) ?? 0))
    },
    pending: () => uses.size,
    async flush(sql) {
      if (uses.size === 0) return 0
      const batch = uses
      uses = new Map()
      try {
        return await flushLastUsed(sql, batch)
      } catch (err) {
        // Kept for the next flush (a newer use noted meanwhile wins).
        for (const [id, at] of batch) if (!((uses.get(id) ?? 0) > at)) uses.set(id, at)
        throw err
      }
    },
    async firstFromAddress(sql, keyId, addressHash) {
      const entry = `${keyId}:${addressHash.toString('hex')}`
      if (seen.has(entry)) return false
      const first = await recordKeyAddress(sql, keyId, addressHash)
      remember(entry)
      return first
    },
  }
}
