import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { clientKey } from '../../lib/client-key.js'
import { AppError } from '../../lib/errors.js'
import { normalizedPath } from './admin-guard.js'

/**
 * Refusals that tell of an attack reach the audit trail, not only the log (OWASP ASVS 5.0 16.3.1,
 * 16.3.3): throttled sign-ins (a correct password refused included), CSRF rejections, and denials
 * on the admin API. An attacker must not flood the table through them, so each source (the
 * signed-in account, else the client address, IPv6 by /64) gets AUDIT_REFUSALS_MAX rows per event
 * per minute; beyond that the log line alone, marked `auditSuppressed`, keeps the count.
 */

export const AUDIT_REFUSALS_MAX = 10
const AUDIT_REFUSALS_WINDOW_MS = 60_000

/** Where a password or a code is checked: a 429 there is a throttled sign-in. */
const SIGN_IN_ROUTES = new Set([
  '/api/auth/login',
  '/api/auth/mfa/verify',
  '/api/auth/reauthenticate',
  '/api/users/me/password',
])
const ADMIN = /^\/api\/admin(\/|$)/

interface Refusal {
  event: string
  detail: Record<string, string | number>
}

function refusalOf(request: FastifyRequest, error: FastifyError): Refusal | null {
  if (!(error instanceof AppError)) return null
  const route = request.routeOptions.url ?? null
  const path = normalizedPath(request.url).slice(0, 200)
  if (error.type === 'csrf-rejected') {
    return { event: 'security.csrf_rejected', detail: { method: request.method, path } }
  }
  if (error.type === 'rate-limited' && route && SIGN_IN_ROUTES.has(route)) {
    return { event: 'auth.throttled', detail: { route, reason: error.message } }
  }
  if ((error.statusCode === 401 || error.statusCode === 403) && ADMIN.test(path)) {
    return { event: 'admin.access_denied', detail: { method: request.method, path, type: error.type ?? '' } }
  }
  return null
}

/**
 * Audits a refusal within its source's budget: the signed-in account (or `userId`), else the client
 * address. Beyond AUDIT_REFUSALS_MAX rows per event per minute, the log line alone keeps the count.
 */
export async function auditRefusal(
  app: FastifyInstance,
  request: FastifyRequest,
  event: string,
  userId: string | null,
  detail: Record<string, string | number | null>,
): Promise<void> {
  // A signed-in caller is bounded by its own account, so anonymous noise from the same address
  // cannot crowd out the record of an account probing where it should not.
  const who = userId ? `user:${userId}` : `ip:${clientKey(request.ip)}`
  const source = `audit:refusals:${event}:${who}`
  let count = 0
  try {
    count = (await app.counters.increment(source, AUDIT_REFUSALS_WINDOW_MS)).count
  } catch {
    // Without the shared counters (Redis away) the record is written: an audit gap is worse.
  }
  if (count > AUDIT_REFUSALS_MAX) {
    request.log.warn({ event, auditSuppressed: true, userId, detail }, event)
    app.metrics?.securityEvent(event, detail) // recorded ones are counted by the audit
    return
  }
  await app.serviceContext(request).audit(event, userId, detail)
}

async function securityAuditPlugin(app: FastifyInstance) {
  app.addHook('onError', async function auditRefusals(request: FastifyRequest, _reply: FastifyReply, error) {
    const refusal = refusalOf(request, error)
    if (refusal)
      await auditRefusal(app, request, refusal.event, request.principal?.userId ?? null, refusal.detail)
  })
}

export default fp(securityAuditPlugin, {
  name: 'security-audit',
  dependencies: ['service-context', 'redis', 'authentication', 'metrics'],
})
