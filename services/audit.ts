import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import { type AuditEvent, insertAuditEvent } from '../repositories/audit.js'

/** Security events, written to the audit table and the log. */

export type AuditDetail = AuditEvent['detail']
export type Audit = (event: string, userId: string | null, detail?: AuditDetail) => Promise<void>

export interface AuditContext {
  ip: string | null
  userAgent: string | null
  requestId: string | null
}

/**
 * Security events go to the audit_events table and to the log (OWASP ASVS 16.3). Callers pass only
 * identifiers and categories: never a password, token or cookie.
 */
export function createAudit(sql: Sql, log: FastifyBaseLogger, ctx: AuditContext): Audit {
  return async (event, userId, detail = {}) => {
    log.info({ event, audit: true, userId, ip: ctx.ip, detail }, event)
    await insertAuditEvent(sql, { event, userId, detail, ...ctx })
  }
}
