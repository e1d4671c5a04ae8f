import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { StoreUnavailable } from '../lib/counter-store.js'
import { AppError, notFound, statusTitle, unavailable } from '../lib/errors.js'
import { DecryptionError } from '../lib/field-crypto.js'
import { fieldErrors } from '../lib/validation.js'
import type { Problem } from '../schemas/common.js'

/** The one error handler: every failure becomes application/problem+json (RFC 9457) with its headers. */

const PROBLEM_TYPE = 'application/problem+json; charset=utf-8'
const RETRY_AFTER_SECONDS = 5

/** postgres.js and socket codes, and SQLSTATE classes 08/57P/53300, that mean "database unreachable". */
const DB_UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  '57P01',
  '57P02',
  '57P03',
  '53300',
])

/**
 * SQLSTATE class 22, data exception: a value from the request PostgreSQL cannot take (NUL in text,
 * a bad literal, a date out of range). The statement failed and changed nothing.
 */
const isDataException = (code: string) => code.startsWith('22')
/** Deadlock or serialization failure: the transaction was rolled back and can simply be retried. */
const RETRYABLE = new Set(['40P01', '40001'])
/**
 * A bounded wait that ran out: statement timeout (57014), lock timeout (55P03), an idle transaction
 * ended by the server (25P03), or the request's deadline (plugins/app/db-deadline.ts).
 */
const TIMED_OUT = new Set(['57014', '55P03', '25P03', 'FST_ERR_HANDLER_TIMEOUT'])

export function isDatabaseUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && (DB_UNAVAILABLE_CODES.has(code) || code.startsWith('08'))
}

/** The headers that belong to a problem type; services only say which problem and its data. */
function problemHeaders(error: AppError): Record<string, string> {
  const headers: Record<string, string> = {}
  const { retryAfterSeconds, limit } = error.data
  if (retryAfterSeconds !== undefined) headers['retry-after'] = String(retryAfterSeconds)
  switch (error.type) {
    // RFC 6750 §3: say that a Bearer token is needed, and whether the one sent was bad.
    case 'unauthenticated':
      headers['www-authenticate'] = 'Bearer'
      break
    case 'invalid-token':
      headers['www-authenticate'] = 'Bearer error="invalid_token"'
      break
    // RFC 6750 §3.1: a valid API key without the scope the route needs.
    case 'insufficient-scope':
      headers['www-authenticate'] = `Bearer error="insufficient_scope", scope="${error.data.scope ?? ''}"`
      break
    // RFC 9470 §3: the token is good but its authentication is too old for this action.
    case 'reauthentication-required':
      headers['www-authenticate'] =
        `Bearer error="insufficient_user_authentication", max_age=${error.data.maxAgeSeconds ?? 0}`
      headers['cache-control'] = 'no-store'
      break
    // An answer about credentials is never kept by a cache (RFC 6749 §5.1, ASVS 14.3.2).
    case 'invalid-credentials':
    case 'invalid-refresh-token':
    case 'invalid-mfa-token':
    case 'invalid-mfa-code':
      headers['cache-control'] = 'no-store'
      break
    // Our own limiters (login) speak the same RateLimit-* headers as @fastify/rate-limit (IETF draft).
    case 'rate-limited':
      if (limit !== undefined && retryAfterSeconds !== undefined) {
        headers['ratelimit-limit'] = String(limit)
        headers['ratelimit-remaining'] = '0'
        headers['ratelimit-reset'] = String(retryAfterSeconds)
      }
      break
  }
  return headers
}

/** At most this many entries in a problem's `errors`; `errorsOmitted` counts the rest. */
export const MAX_FIELD_ERRORS = 20

function send(
  request: FastifyRequest,
  reply: FastifyReply,
  problem: Omit<Problem, 'instance' | 'requestId'>,
) {
  const body: Problem = { ...problem, instance: request.url.split('?')[0] ?? '/', requestId: request.id }
  // A 64 KB body of unknown keys must not become a half-megabyte answer: the first few, and a count.
  if (body.errors && body.errors.length > MAX_FIELD_ERRORS) {
    body.errorsOmitted = body.errors.length - MAX_FIELD_ERRORS
    body.errors = body.errors.slice(0, MAX_FIELD_ERRORS)
  }
  // Serialize here, not through the route's response schema, so no field of the problem is dropped.
  return reply.code(problem.status).type(PROBLEM_TYPE).serializer(JSON.stringify).send(body)
}

/** A problem from the catalogue: its type, words and data, with the headers its type carries. */
function sendProblem(request: FastifyRequest, reply: FastifyReply, error: AppError) {
  reply.headers(problemHeaders(error))
  return send(request, reply, {
    type: error.type ? `urn:bulwark:problem:${error.type}` : 'about:blank',
    title: statusTitle(error.statusCode),
    status: error.statusCode,
    detail: error.message,
    ...(error.errors ? { errors: error.errors } : {}),
  })
}

function errorHandler(
  this: FastifyInstance,
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  const production = this.config.NODE_ENV === 'production'
  if (error.validation) {
    request.log.info({ event: 'request.invalid', context: error.validationContext }, 'validation failed')
    return send(request, reply, {
      type: 'urn:bulwark:problem:validation-error',
      title: 'Validation failed',
      status: 400,
      detail: 'The request is invalid; see errors for each field.',
      errors: fieldErrors(error.validation, error.validationContext ?? 'request'),
    })
  }
  if (error instanceof AppError) return sendProblem(request, reply, error)
  if (isDataException((error as { code?: string }).code ?? '')) {
    // PostgreSQL cannot store NUL (or bytes invalid in UTF-8); the statement failed and changed nothing.
    return send(request, reply, {
      type: 'urn:bulwark:problem:validation-error',
      title: 'Validation failed',
      status: 400,
      detail:
        'The request contains a value that cannot be stored or compared (such as NUL or an out-of-range date).',
    })
  }
  const code = (error as { code?: string }).code ?? ''
  if (TIMED_OUT.has(code)) {
    // Saturation, not a fault: the client may retry; the log says which bound ran out (ASVS 5.0 15.2.2).
    const event = code.startsWith('FST_') ? 'request.deadline' : 'db.timeout'
    request.log.warn({ event, code }, 'database wait exceeded its bound')
    const detail = 'The service is temporarily unavailable. Try again later.'
    return sendProblem(request, reply, unavailable('service-unavailable', detail, RETRY_AFTER_SECONDS))
  }
  const storeDown = error instanceof StoreUnavailable
  if (isDatabaseUnavailable(error) || storeDown || RETRYABLE.has((error as { code?: string }).code ?? '')) {
    request.log.error(
      { err: error, event: storeDown ? 'ratelimit.store_unavailable' : 'db.unavailable' },
      storeDown ? 'rate-limit store unavailable' : 'database unavailable',
    )
    const detail = 'The service is temporarily unavailable. Try again later.'
    return sendProblem(request, reply, unavailable('service-unavailable', detail, RETRY_AFTER_SECONDS))
  }
  const status = error.statusCode
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // Fastify's own 4xx errors (bad JSON, 413, 415, 408) carry messages safe to show.
    request.log.info({ event: 'request.rejected', code: error.code, status }, error.message)
    return send(request, reply, {
      type: 'about:blank',
      title: statusTitle(status),
      status,
      detail: error.message,
    })
  }
  // A value that does not decrypt (tampered, moved, or its key removed) fails closed (ASVS 11.3.x).
  const event = error instanceof DecryptionError ? 'data.decrypt_failed' : 'request.failed'
  request.log.error({ err: error, event }, 'unhandled error')
  // Production never shows internals: no message, stack, SQL or host names (OWASP ASVS 16.5.1).
  return send(request, reply, {
    type: 'about:blank',
    title: statusTitle(500),
    status: 500,
    detail: production ? 'An unexpected error occurred.' : error.message,
    ...(production || !error.stack ? {} : { stack: error.stack }),
  })
}

function notFoundHandler(request: FastifyRequest, reply: FastifyReply) {
  return sendProblem(request, reply, notFound())
}

async function errorsPlugin(app: FastifyInstance) {
  app.setErrorHandler(errorHandler)
  app.setNotFoundHandler(notFoundHandler)
}

export default fp(errorsPlugin, { name: 'errors' })
