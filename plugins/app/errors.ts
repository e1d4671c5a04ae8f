import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Problem } from '../../schemas/common.js'
import { StoreUnavailable } from '../../services/counter-store.js'
import { AppError, type FieldError, statusTitle } from '../../services/errors.js'

const PROBLEM_TYPE = 'application/problem+json; charset=utf-8'
const RETRY_AFTER_SECONDS = '5'

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

export function isDatabaseUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && (DB_UNAVAILABLE_CODES.has(code) || code.startsWith('08'))
}

interface AjvError {
  instancePath: string
  keyword: string
  message?: string
  params: Record<string, unknown>
  parentSchema?: { 'x-message'?: string }
}

/** Turns Ajv's errors into `{ path, message }` pairs a person can read, e.g. `body.username`. */
export function fieldErrors(validation: AjvError[], context: string | undefined): FieldError[] {
  return validation.map((e) => {
    const segments = e.instancePath.split('/').filter(Boolean)
    let message = e.parentSchema?.['x-message'] ?? e.message ?? 'is invalid'
    if (e.keyword === 'required') {
      segments.push(String(e.params.missingProperty))
      message = 'is required'
    } else if (e.keyword === 'additionalProperties') {
      segments.push(String(e.params.additionalProperty))
      message = 'is not an allowed property'
    }
    return { path: [context ?? 'request', ...segments].join('.'), message }
  })
}

function send(
  request: FastifyRequest,
  reply: FastifyReply,
  problem: Omit<Problem, 'instance' | 'requestId'>,
) {
  const body: Problem = { ...problem, instance: request.url.split('?')[0] ?? '/', requestId: request.id }
  // Serialize here, not through the route's response schema, so no field of the problem is dropped.
  return reply.code(problem.status).type(PROBLEM_TYPE).serializer(JSON.stringify).send(body)
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
      errors: fieldErrors(error.validation as AjvError[], error.validationContext),
    })
  }
  if (error instanceof AppError) {
    reply.headers(error.headers)
    return send(request, reply, {
      type: error.type ? `urn:bulwark:problem:${error.type}` : 'about:blank',
      title: statusTitle(error.statusCode),
      status: error.statusCode,
      detail: error.message,
      ...(error.errors ? { errors: error.errors } : {}),
    })
  }
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
  const storeDown = error instanceof StoreUnavailable
  if (isDatabaseUnavailable(error) || storeDown || RETRYABLE.has((error as { code?: string }).code ?? '')) {
    request.log.error(
      { err: error, event: storeDown ? 'ratelimit.store_unavailable' : 'db.unavailable' },
      storeDown ? 'rate-limit store unavailable' : 'database unavailable',
    )
    reply.header('retry-after', RETRY_AFTER_SECONDS)
    return send(request, reply, {
      type: 'urn:bulwark:problem:service-unavailable',
      title: statusTitle(503),
      status: 503,
      detail: 'The service is temporarily unavailable. Try again later.',
    })
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
  request.log.error({ err: error, event: 'request.failed' }, 'unhandled error')
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
  return send(request, reply, {
    type: 'about:blank',
    title: statusTitle(404),
    status: 404,
    detail: 'The requested resource does not exist.',
  })
}

async function errorsPlugin(app: FastifyInstance) {
  app.setErrorHandler(errorHandler)
  app.setNotFoundHandler(notFoundHandler)
}

export default fp(errorsPlugin, { name: 'errors' })
