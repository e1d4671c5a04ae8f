import { randomUUID } from 'node:crypto'
import type { Sql, TransactionSql } from 'postgres'
import type { Position } from '../lib/cursor.js'
import { type FieldCipher, openOrigin, sealOrigin } from '../lib/field-crypto.js'
import { olderThan } from './keyset.js'

/** SQL for the audit log (audit_events): append and list; addresses and user agents stored encrypted. */

export interface AuditEvent {
  event: string
  userId: string | null
  ip: string | null
  userAgent: string | null
  requestId: string | null
  detail: Record<string, string | number | boolean | null>
}

export async function insertAuditEvent(
  db: Sql | TransactionSql,
  cipher: FieldCipher,
  e: AuditEvent,
): Promise<void> {
  const id = randomUUID()
  const origin = sealOrigin(cipher, 'audit_events', id, e)
  await db`
    insert into audit_events (id, event, user_id, ip, user_agent, request_id, detail)
    values (${id}, ${e.event}, ${e.userId}, ${origin.ip}, ${origin.userAgent}, ${e.requestId}, ${db.json(e.detail)})
  `
}

export interface AuditRow extends AuditEvent {
  id: string
  createdAt: Date
  cursorAt: string
}

export async function listAuditEvents(
  db: Sql,
  cipher: FieldCipher,
  q: {
    limit: number
    after: Position | null
    event?: string | undefined
    userId?: string | undefined
    since?: string | undefined
  },
): Promise<AuditRow[]> {
  const rows = await db<AuditRow[]>`
    select id, event, user_id, ip, user_agent, request_id, detail, created_at, created_at::text as cursor_at
    from audit_events
    where true
      ${q.event !== undefined ? db`and event = ${q.event}` : db``}
      ${q.userId !== undefined ? db`and user_id = ${q.userId}` : db``}
      ${q.since !== undefined ? db`and created_at >= ${q.since}::text::timestamptz` : db``}
      ${olderThan(db, q.after)}
    order by created_at desc, id desc
    limit ${q.limit + 1}
  `
  return rows.map((row) => ({ ...row, ...openOrigin(cipher, 'audit_events', row.id, row) }))
}
