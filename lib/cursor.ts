import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { invalidField } from './errors.js'

/** Keyset pagination: positions, signed cursors bound to their list, and one page of a list. */

/** A keyset position: the row's exact created_at (as PostgreSQL prints it) and its id. */
export interface Position {
  createdAt: string
  id: string
}

/** Which listing a cursor belongs to: a cursor from one list is refused by another. */
export type CursorScope = 'comments' | 'admin-users' | 'audit-events'

export interface CursorCodec {
  encode(position: Position, scope: CursorScope): string
  decode(cursor: string | undefined, scope: CursorScope): Position | null
}

const POSITION = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2})?\|[0-9a-f-]{36}$/

const forged = () =>
  invalidField('querystring.cursor', 'is not a cursor this service issued', 'The cursor is invalid.')

/**
 * Signed cursors, bound to their listing: clients cannot forge a position (a changed cursor is 400), and
 * what reaches SQL has already passed a strict pattern.
 */
export function createCursorCodec(secret: string): CursorCodec {
  const key = createHash('sha256').update(`bulwark-cursor:${secret}`).digest()
  const mac = (payload: string) => createHmac('sha256', key).update(payload).digest().subarray(0, 16)
  return {
    encode({ createdAt, id }, scope) {
      const payload = `${createdAt}|${id}`
      return `${Buffer.from(payload).toString('base64url')}.${mac(`${scope}|${payload}`).toString('base64url')}`
    },
    decode(cursor, scope) {
      if (cursor === undefined) return null
      const parts = cursor.split('.')
      const [body, sig] = parts
      if (parts.length !== 2 || !body || !sig) throw forged()
      const payload = Buffer.from(body, 'base64url').toString('utf8')
      const given = Buffer.from(sig, 'base64url')
      const expected = mac(`${scope}|${payload}`)
      if (given.length !== expected.length || !timingSafeEqual(given, expected) || !POSITION.test(payload)) {
        throw forged()
      }
      const [createdAt, id] = payload.split('|') as [string, string]
      return { createdAt, id }
    },
  }
}

/**
 * One page of a keyset listing: decode the caller's cursor for this list, fetch one row more than
 * asked (its presence says a next page exists), and sign the position of the last row returned.
 */
export async function listPage<Row extends { cursorAt: string; id: string }, Item>(
  codec: CursorCodec,
  scope: CursorScope,
  query: { limit: number; cursor?: string | undefined },
  fetch: (after: Position | null) => Promise<Row[]>,
  toItem: (row: Row) => Item,
): Promise<{ items: Item[]; nextCursor: string | null }> {
  const rows = await fetch(codec.decode(query.cursor, scope))
  const kept = rows.slice(0, query.limit)
  const last = kept.at(-1)
  const more = rows.length > query.limit && last
  return {
    items: kept.map(toItem),
    nextCursor: more ? codec.encode({ createdAt: last.cursorAt, id: last.id }, scope) : null,
  }
}
