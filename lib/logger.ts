import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino'
import type { Config } from '../schemas/env.js'

/** The process logger: pino JSON lines, with secrets redacted once for every line. */

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
 * only the objects on the way to a secret (the caller's objects are never changed). A hand walk,
 * not pino's wildcard redaction, for speed: see the README's benchmark section.
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
