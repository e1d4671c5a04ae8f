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

/** pino's redaction has no recursive wildcard, so list each key at the depths we log (0–3). */
export const REDACT_PATHS = SECRET_KEYS.flatMap((key) => {
  const k = /^[A-Za-z_$][\w$]*$/.test(key) ? key : `["${key}"]`
  const dot = k.startsWith('[') ? '' : '.'
  return [k, `*${dot}${k}`, `*.*${dot}${k}`, `*.*.*${dot}${k}`]
})

export function loggerOptions(config: Pick<Config, 'LOG_LEVEL'>): LoggerOptions {
  return {
    level: config.LOG_LEVEL,
    base: { service: 'bulwark' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
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
