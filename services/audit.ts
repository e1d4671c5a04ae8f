import type { FastifyBaseLogger } from 'fastify'
import type { Sql, TransactionSql } from 'postgres'
import type { FieldCipher } from '../lib/field-crypto.js'
import { type AuditEvent, insertAuditEvent } from '../repositories/audit.js'

/** Security events, written to the audit table and the log. */

export type AuditDetail = AuditEvent['detail']
/**
 * Records a security event. Pass the transaction of the change it records: the row then commits or
 * rolls back with the change, so neither exists without the other (OWASP ASVS 16.3.4).
 */
export type Audit = (
  event: string,
  userId: string | null,
  detail?: AuditDetail,
  tx?: Sql | TransactionSql,
) => Promise<void>

/** Told of each event once it is recorded (metrics count outcomes here: plugins/app/metrics.ts). */
export type AuditObserver = (event: string, detail: AuditDetail) => void

export interface AuditContext {
  ip: string | null
  userAgent: string | null
  requestId: string | null
}

/**
 * Security events go to the audit_events table and to the log (OWASP ASVS 16.3). Callers pass only
 * identifiers and categories: never a password, token or cookie.
 */
export function createAudit(
  sql: Sql,
  cipher: FieldCipher,
  log: FastifyBaseLogger,
  ctx: AuditContext,
  observe?: AuditObserver,
): Audit {
  return async (event, userId, detail = {}, tx = sql) => {
    await insertAuditEvent(tx, cipher, { event, userId, detail, ...ctx })
    log.info({ event, audit: true, userId, ip: ctx.ip, detail }, event)
    // The row is written: an observer's failure must not fail the call (and roll back its transaction).
    try {
      observe?.(event, detail)
    } catch (err) {
      log.warn({ err, event: 'audit.observer_failed', auditEvent: event }, 'audit observer failed')
    }
  }
}
