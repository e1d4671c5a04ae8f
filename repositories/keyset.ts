import type { Sql, TransactionSql } from 'postgres'
import type { Position } from '../lib/cursor.js'

/** The keyset-pagination SQL fragment shared by every list (a helper, not a repository: it owns no table). */

/**
 * `and (created_at, id) < (cursor)` for newest-first keyset pages, or nothing on the first page.
 * postgres.js would turn a timestamptz parameter into a JS Date (milliseconds); going through text
 * keeps the cursor's microseconds, so rows in the same millisecond are neither skipped nor repeated.
 */
export function olderThan(db: Sql | TransactionSql, after: Position | null, alias?: string) {
  if (!after) return db``
  const column = (name: string) => db(alias ? `${alias}.${name}` : name)
  return db`and (${column('created_at')}, ${column('id')}) < (${after.createdAt}::text::timestamptz, ${after.id}::uuid)`
}
