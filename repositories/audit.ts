import type { Sql, TransactionSql } from 'postgres'

export interface AuditEvent {
  event: string
  userId: string | null
  ip: string | null
  userAgent: string | null
  requestId: string | null
  detail: Record<string, string | number | boolean | null>
}

export async function insertAuditEvent(db: Sql | TransactionSql, e: AuditEvent): Promise<void> {
  await db`
    insert into audit_events (event, user_id, ip, user_agent, request_id, detail)
    values (${e.event}, ${e.userId}, ${e.ip}, ${e.userAgent}, ${e.requestId}, ${db.json(e.detail)})
  `
}
