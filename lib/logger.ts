import { createRequire } from 'node:module'
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino'
import type { prettyFactory } from 'pino-pretty'
import type { Config } from '../schemas/env.js'
import { activeTracing } from './tracing.js'

/** The process logger: pino JSON lines (pino-pretty's at a developer's terminal), with secrets redacted once for every line. */

/**
 * A field is a secret when its name, in any letter case, contains one of these words: userPassword,
 * clientSecret, apiToken, mfaToken, x-api-key, proxy-authorization, set-cookie (OWASP ASVS 5.0
 * 16.2.5). "auth" alone is not one: authorId is logged and harmless.
 */
const SECRET_WORD =
  /password|passwd|passphrase|pwd|secret|token|authorization|bearer|cookie|api[-_]?key|private[-_]?key|credential|pepper|jwt|dsn|connection[-_]?string|recovery|totp|otpauth|mfa[-_]?code|(?:signing|hmac|encryption|master|session)[-_]?keys?$/

/** "otp" as a word of the name (otp, otpCode, userOtp, OTP_VALUE), not inside another word (footprint). */
const OTP_WORD = /(?:^|[^A-Za-z])(?:otp|OTP)(?:[^a-z]|$)|[a-z]Otp(?:[^a-z]|$)|^Otp(?:[^a-z]|$)/

/**
 * "key" only as the last word of the name (apiKey, DATA_INDEX_KEY, encryption_keys): a name that
 * is a key. Where "key" qualifies another word (keyId, keyPrefix) it names something about a key,
 * which logs may carry; "monkey" and "hotkeys" are not words ending in "key".
 */
const KEY_WORD = /(?:^|[^A-Za-z0-9])(?:key|KEY)S?$|(?:^|[^A-Za-z0-9])keys$|(?:^|[^A-Z])Keys?$/

/** Secrets whose names carry none of those words: URLs with credentials, postgres.js bound values. */
const SECRET_NAMES = new Set(['database_url', 'database_migration_url', 'redis_url', 'parameters', 'args'])

const CENSOR = '[Redacted]'
const CIRCULAR = '[Circular]'
/** Deeper than this, a subtree is replaced, not walked: no stack overflow, and nothing unscrubbed. */
const MAX_DEPTH = 64
const TOO_DEEP = '[Too deep]'

/** The decision per field name, so the patterns run once per distinct name. Bounded: names may come from input. */
const decisions = new Map<string, boolean>()
const MAX_DECISIONS = 10_000

/** Whether a field with this name holds a secret (cached). */
export function isSecretKey(name: string): boolean {
  let secret = decisions.get(name)
  if (secret === undefined) {
    const lower = name.toLowerCase()
    secret = SECRET_WORD.test(lower) || KEY_WORD.test(name) || OTP_WORD.test(name) || SECRET_NAMES.has(lower)
    if (decisions.size >= MAX_DECISIONS) decisions.clear()
    decisions.set(name, secret)
  }
  return secret
}

/**
 * Replaces the value of every secret-named field, at any depth, copying only the objects on the
 * way to a secret (the caller's objects are never changed). A hand walk, not pino's wildcard
 * redaction, for speed: see the README's benchmark section. A cycle becomes "[Circular]" and a
 * subtree below MAX_DEPTH "[Too deep]": handing the original on would let pino print what is in it.
 */
export function scrubSecrets<T>(value: T): T {
  return walk(value, [])
}

function walk<T>(value: T, ancestors: object[]): T {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value
  // A URL has no enumerable fields: it would print whole, credentials included.
  if (value instanceof URL) return withoutCredentials(value) as T
  if (ancestors.includes(value)) return CIRCULAR as T
  if (ancestors.length >= MAX_DEPTH) return TOO_DEEP as T
  ancestors.push(value)
  const clean = Array.isArray(value) ? walkArray(value, ancestors) : walkObject(value, ancestors)
  ancestors.pop()
  return clean as T
}

function withoutCredentials(url: URL): string {
  if (!url.username && !url.password) return url.href
  const copy = new URL(url.href)
  copy.username = copy.username ? CENSOR : ''
  copy.password = copy.password ? CENSOR : ''
  return copy.href
}

function walkArray(value: unknown[], ancestors: object[]): unknown[] {
  let copy: unknown[] | undefined
  for (let i = 0; i < value.length; i++) {
    const item = value[i]
    const clean = walk(item, ancestors)
    if (clean === item) continue
    copy ??= [...value]
    copy[i] = clean
  }
  return copy ?? value
}

function walkObject(value: object, ancestors: object[]): object {
  let copy: Record<string, unknown> | undefined
  const source = value as Record<string, unknown>
  for (const key of Object.keys(source)) {
    const item = source[key]
    const clean = isSecretKey(key) ? CENSOR : walk(item, ancestors)
    if (clean === item) continue
    // An Error's message and stack are not enumerable: a copy names them, or they would be lost.
    copy ??=
      value instanceof Error
        ? { type: value.name, message: value.message, stack: value.stack, ...source }
        : { ...source }
    copy[key] = clean
  }
  return copy ?? value
}

/** Redaction is configured here once, for every log line: the merged object and serialized errors. */
export function loggerOptions(config: Pick<Config, 'LOG_LEVEL'>): LoggerOptions {
  return {
    level: config.LOG_LEVEL,
    base: { service: 'bulwark' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }), log: (object) => scrubSecrets(object) },
    serializers: { err: (error: Error) => scrubSecrets(pino.stdSerializers.err(error)) },
    ...traceMixin(),
  }
}

/**
 * With tracing on (started before the logger), each line logged inside a span carries trace_id and
 * span_id; with it off there is no mixin at all, so a line costs what it did.
 */
function traceMixin(): Pick<LoggerOptions, 'mixin'> {
  const tracing = activeTracing()
  return tracing ? { mixin: tracing.logFields } : {}
}

/** Lines waiting for a slow stdout, at most: past it new lines are dropped (and counted), not kept. */
export const MAX_PENDING_LOG_BYTES = 8 * 1024 * 1024
const DROP_REPORT_MS = 10_000

/** What a logger needs of the settings; without NODE_ENV, LOG_FORMAT=auto means JSON. */
export type LoggerConfig = Pick<Config, 'LOG_LEVEL'> & Partial<Pick<Config, 'LOG_FORMAT' | 'NODE_ENV'>>

/** JSON lines, or pino-pretty's for a person: by default only outside production, on a terminal. */
export function logFormat(config: LoggerConfig, isTTY = process.stdout.isTTY === true): 'json' | 'pretty' {
  const format = config.LOG_FORMAT ?? 'auto'
  if (format !== 'auto') return format
  return config.NODE_ENV !== undefined && config.NODE_ENV !== 'production' && isTTY ? 'pretty' : 'json'
}

type PrettyFactory = typeof prettyFactory

/** pino-pretty's formatter, or null where it is not installed (the production image has no devDependencies). */
export function loadPrettyFactory(): PrettyFactory | null {
  try {
    return (createRequire(import.meta.url)('pino-pretty') as { prettyFactory: PrettyFactory }).prettyFactory
  } catch {
    return null
  }
}

/**
 * Formats each (already redacted) JSON line synchronously and hands it to the same destination, so
 * the asynchronous writes, the bound on pending bytes and the flush at exit stay as they are.
 */
export function prettyStream(destination: DestinationStream, factory: PrettyFactory, colorize: boolean) {
  const pretty = factory({
    colorize,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,service',
  })
  return { write: (line: string) => destination.write(pretty(line)) }
}

/**
 * One logger for the process: JSON lines on stdout (or the given stream, in tests). Written
 * asynchronously: a synchronous write to a pipe that is not drained fast enough spins in
 * atomic-sleep, measured at 30 % of the CPU of `/health/live` under load (README, Benchmark).
 * Lines that arrive while a write is under way go out together in the next one; pino flushes what
 * is left when the process exits. A stdout nobody drains (a stuck log driver) cannot fill the heap:
 * past MAX_PENDING_LOG_BYTES lines are dropped, and one `log.dropped` line says how many (ASVS 5.0 16.4.x).
 */
export function createLogger(config: LoggerConfig, stream?: DestinationStream): Logger {
  if (stream) return pino(loggerOptions(config), stream)
  const destination = pino.destination({ dest: 1, sync: false, maxLength: MAX_PENDING_LOG_BYTES })
  const format = logFormat(config)
  const factory = format === 'pretty' ? loadPrettyFactory() : null
  const logger = pino(
    loggerOptions(config),
    factory ? prettyStream(destination, factory, process.stdout.isTTY === true) : destination,
  )
  if (format === 'pretty' && !factory && config.LOG_FORMAT === 'pretty') {
    logger.warn(
      { event: 'log.pretty_unavailable' },
      'LOG_FORMAT=pretty, but pino-pretty is not installed: JSON',
    )
  }
  let dropped = 0
  destination.on('drop', () => {
    dropped++
  })
  setInterval(() => {
    if (dropped === 0) return
    logger.error({ event: 'log.dropped', lines: dropped }, 'log lines dropped: stdout is not being read')
    dropped = 0
  }, DROP_REPORT_MS).unref()
  return logger
}
