import { closeSync, existsSync, openSync, readSync } from 'node:fs'
import { isIP } from 'node:net'
import { Value } from '@sinclair/typebox/value'
import {
  type Config,
  DEV_DATA_ENCRYPTION_KEYS,
  DEV_DATA_INDEX_KEY,
  DEV_JWT_SECRET,
  DEV_PASSWORD_PEPPER,
  EnvSchema,
  REQUIRED_IN_PRODUCTION,
  SECRET_SETTINGS,
} from '../schemas/env.js'
import { isLocalHost, transportProblem } from './db-tls.js'
import { parseDataKeys } from './field-crypto.js'
import { parsePepper } from './pepper.js'
import { estimatedBits, MIN_SECRET_BITS, sameHmacKey } from './secret-strength.js'
import { resolveWebauthn } from './webauthn-config.js'

/** Settings from the environment: read, converted and validated once, with one-line errors for operators. */

/** A configuration problem: its message is the one line an operator sees before exit code 1. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}

/**
 * Reads `.env` into process.env when present; variables already set in the environment win. Not
 * under NODE_ENV=test (set by `npm test` for every process it starts): a developer's `.env` is for
 * `npm start` and the CLI, and must not change what a test runs against. Returns whether it was read.
 */
export function readDotEnv(path = '.env', env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NODE_ENV === 'test' || !existsSync(path)) return false
  process.loadEnvFile(path)
  return true
}

/** Larger than any secret setting may be (their schemas cap them far lower); more is refused unread. */
const MAX_SECRET_FILE_BYTES = 65_536

const isSet = (value: string | undefined): value is string => value !== undefined && value.trim() !== ''

/** The file's text, read with a bound (a path such as /dev/zero cannot exhaust memory). */
function readSecretFile(name: string, path: string): string {
  const buffer = Buffer.alloc(MAX_SECRET_FILE_BYTES + 1)
  let length = 0
  try {
    const fd = openSync(path, 'r')
    try {
      for (let n = -1; n !== 0 && length < buffer.length; length += n) {
        n = readSync(fd, buffer, length, buffer.length - length, null)
      }
    } finally {
      closeSync(fd)
    }
  } catch (error) {
    // The code only (ENOENT, EACCES, EISDIR): one line, and never any of the file's content.
    throw new ConfigError(
      `${name} is invalid: the file cannot be read (${(error as { code?: string }).code})`,
    )
  }
  if (length > MAX_SECRET_FILE_BYTES) throw new ConfigError(`${name} is invalid: the file is too large`)
  return buffer.toString('utf8', 0, length)
}

/**
 * Secrets may come from files (`NAME_FILE`, the Docker and Kubernetes secrets convention), kept out of
 * the environment that child processes, /proc and `docker inspect` show (OWASP ASVS 5.0 13.3.1). The
 * text then counts as the variable would: trimmed (so the trailing newline goes), and empty is unset,
 * so one secret has one value whichever way it arrives.
 */
function withSecretFiles(env: Record<string, string | undefined>): Record<string, string | undefined> {
  const resolved = { ...env }
  for (const key of SECRET_SETTINGS) {
    const fileKey = `${key}_FILE`
    const path = env[fileKey]
    if (!isSet(path)) continue
    if (isSet(env[key])) throw new ConfigError(`${key} is invalid: set ${key} or ${fileKey}, not both`)
    resolved[key] = readSecretFile(fileKey, path.trim())
  }
  return resolved
}

/**
 * Validates the environment once against schemas/env.ts. Secrets named by `NAME_FILE` are read
 * first. Empty strings (and empty files) count as unset, unknown variables are ignored, and a bad
 * value throws a ConfigError naming the variable (never its value, which may be a secret).
 */
export function loadConfig(environment: Record<string, string | undefined>): Config {
  const env = withSecretFiles(environment)
  const keys = Object.keys(EnvSchema.properties) as (keyof Config)[]
  const raw: Record<string, string> = {}
  for (const key of keys) {
    const value = env[key]
    if (value !== undefined && value.trim() !== '') raw[key] = value.trim()
  }
  const production = raw.NODE_ENV === 'production'
  if (production) {
    for (const key of REQUIRED_IN_PRODUCTION) {
      if (raw[key] === undefined) throw new ConfigError(`${key} is required when NODE_ENV=production`)
    }
  }
  // Secure cookies by default in production only: plain-http development would otherwise drop them.
  raw.COOKIE_SECURE ??= String(production)
  // API docs UI is a development convenience; production opts in.
  raw.DOCS_ENABLED ??= String(!production)
  const candidate = Value.Convert(EnvSchema, Value.Default(EnvSchema, raw))
  const first = Value.Errors(EnvSchema, candidate).First()
  if (first) {
    const name = first.path.replace(/^\//, '') || 'environment'
    throw new ConfigError(`${name} is invalid: ${first.message.toLowerCase()}`)
  }
  const config: Config = Value.Decode(EnvSchema, candidate)
  if (config.HEADERS_TIMEOUT_MS > config.REQUEST_TIMEOUT_MS) {
    throw new ConfigError('HEADERS_TIMEOUT_MS is invalid: must not exceed REQUEST_TIMEOUT_MS')
  }
  // OWASP ASVS 11.4.2: a work factor under 10 is too cheap to slow an offline attack.
  if (production && config.BCRYPT_COST < 10) {
    throw new ConfigError('BCRYPT_COST is invalid: must be at least 10 when NODE_ENV=production')
  }
  let data: ReturnType<typeof parseDataKeys>
  try {
    data = parseDataKeys(config.DATA_ENCRYPTION_KEYS, config.DATA_INDEX_KEY)
  } catch (error) {
    const name = (error as Error).message.split(' ')[0] ?? 'DATA_ENCRYPTION_KEYS'
    throw new ConfigError(`${name} is invalid: ${(error as Error).message.slice(name.length + 1)}`)
  }
  // The development data keys are public: personal data under them is not protected (ASVS 11.1.3).
  // Compared as key bytes, so another id or another base64 spelling of them is refused too (every
  // key is exactly 32 bytes, so the HMAC zero-padding trick cannot make another spelling of one).
  const dev = parseDataKeys(DEV_DATA_ENCRYPTION_KEYS, DEV_DATA_INDEX_KEY)
  const devKeys = [...dev.keys.values(), dev.index]
  const usesDevKey = [...data.keys.values(), data.index].some((key) => devKeys.some((d) => d.equals(key)))
  if (production && usesDevKey) {
    throw new ConfigError(
      'DATA_ENCRYPTION_KEYS is invalid: the development keys are not allowed in production',
    )
  }
  const problem =
    passwordProblem(config, production) ??
    cookieProblem(config, production) ??
    mailProblem(config, production) ??
    resolveWebauthn(config, production)
  if (problem) throw new ConfigError(problem)
  // RFC 8725 §3.5: an HMAC signing secret must not be guessable; the public development one never
  // signs in production, nor does a patterned one (32 times "a" passes the length rule).
  if (production && sameHmacKey(config.JWT_SECRET, DEV_JWT_SECRET)) {
    throw new ConfigError('JWT_SECRET is invalid: the development secret is not allowed in production')
  }
  if (production && estimatedBits(config.JWT_SECRET) < MIN_SECRET_BITS) {
    throw new ConfigError(
      'JWT_SECRET is invalid: too predictable for production (use 32 random bytes, e.g. openssl rand -base64 32)',
    )
  }
  if (Boolean(config.JWT_PRIVATE_KEY) !== Boolean(config.JWT_PUBLIC_KEY)) {
    throw new ConfigError(
      'JWT_PUBLIC_KEY is invalid: JWT_PRIVATE_KEY and JWT_PUBLIC_KEY must be set together',
    )
  }
  if (config.CORS_ORIGINS.some((origin) => origin.includes('*'))) {
    // Credentialed CORS with a wildcard would let any site read users' data (OWASP ASVS 3.4.x).
    throw new ConfigError('CORS_ORIGINS is invalid: a wildcard is not allowed because credentials are on')
  }
  for (const entry of config.TRUST_PROXY) {
    if (!isIP(entry.split('/')[0] ?? '') && !['loopback', 'linklocal', 'uniquelocal'].includes(entry)) {
      throw new ConfigError('TRUST_PROXY is invalid: use gateway addresses or CIDR ranges, comma-separated')
    }
  }
  for (const origin of config.CORS_ORIGINS) {
    if (!/^https?:\/\/[^/?#*]+$/.test(origin)) {
      throw new ConfigError(
        'CORS_ORIGINS is invalid: each entry must be an exact origin like https://app.example.com',
      )
    }
  }
  if (config.MFA_REQUIRED_ROLES.some((role) => role !== 'user' && role !== 'admin')) {
    throw new ConfigError('MFA_REQUIRED_ROLES is invalid: list roles among user and admin, comma-separated')
  }
  // ASVS 5.0 12.3.1/12.3.4: sslmode and CA files valid; production reaches other hosts only over TLS.
  const transport = transportProblem(config, production)
  if (transport) throw new ConfigError(transport)
  return Object.freeze(config)
}

/**
 * Production sends real mail or says it sends none: a silent .eml directory would lose every reset
 * link. Verified addresses cannot be required without mail to verify them.
 */
function mailProblem(config: Config, production: boolean): string | null {
  if (config.REQUIRE_VERIFIED_EMAIL && config.MAIL_DISABLED) {
    return 'REQUIRE_VERIFIED_EMAIL is invalid: true needs mail (MAIL_DISABLED=true turns it off)'
  }
  for (const name of ['SMTP_URL', 'PUBLIC_APP_URL'] as const) {
    const url = config[name]
    if (url !== undefined && !URL.canParse(url)) return `${name} is invalid: not a URL`
  }
  // nodemailer lets query options override the transport's TLS rule (requireTLS=false sent
  // production mail in the clear): TLS comes from the scheme and NODE_ENV only (ASVS 5.0 12.3.1).
  const smtpOptions = config.SMTP_URL ? [...new URL(config.SMTP_URL).searchParams.keys()] : []
  if (smtpOptions.some((key) => /^(secure|requiretls|ignoretls|opportunistictls|tls\.)/i.test(key))) {
    return 'SMTP_URL is invalid: TLS is chosen by smtp:// or smtps://, never by query options'
  }
  if (!production || config.MAIL_DISABLED) return null
  if (!config.SMTP_URL) return 'SMTP_URL is required when NODE_ENV=production (or set MAIL_DISABLED=true)'
  if (!config.PUBLIC_APP_URL) {
    return 'PUBLIC_APP_URL is required when NODE_ENV=production (the base of the links in mails)'
  }
  // Links carry tokens: a plain-http link to a remote host would expose them in transit (ASVS 5.0 12.2.1).
  const app = new URL(config.PUBLIC_APP_URL)
  if (app.protocol === 'http:' && !isLocalHost(app.hostname)) {
    return 'PUBLIC_APP_URL is invalid: a non-loopback host needs https:// when NODE_ENV=production'
  }
  return null
}

/** Cookies without Secure in production only by an explicit override (a TLS-terminating gateway on plain http). */
function cookieProblem(config: Config, production: boolean): string | null {
  if (production && !config.COOKIE_SECURE && !config.ALLOW_INSECURE_COOKIES) {
    return 'COOKIE_SECURE is invalid: false is not allowed when NODE_ENV=production unless ALLOW_INSECURE_COOKIES=true'
  }
  return null
}

function passwordProblem(config: Config, production: boolean): string | null {
  // NIST SP 800-63B-4 §3.1.1.2: never below 8, even where a second factor is required.
  if (production && config.PASSWORD_MIN_LENGTH < 8) {
    return 'PASSWORD_MIN_LENGTH is invalid: must be at least 8 when NODE_ENV=production'
  }
  let pepper: Buffer
  try {
    pepper = parsePepper(config.PASSWORD_PEPPER)
  } catch (error) {
    return `PASSWORD_PEPPER is invalid: ${(error as Error).message.replace(/^PASSWORD_PEPPER /, '')}`
  }
  // The development pepper is public. Compared by what it does as an HMAC key, not by its bytes: HMAC
  // pads a short key with zero bytes, so the dev pepper plus trailing NULs is the same key (RFC 2104 §2).
  if (production && sameHmacKey(pepper, parsePepper(DEV_PASSWORD_PEPPER))) {
    return 'PASSWORD_PEPPER is invalid: the development pepper is not allowed in production'
  }
  const url = config.PWNED_PASSWORDS_URL
  if (url !== undefined && !URL.canParse(url)) return 'PWNED_PASSWORDS_URL is invalid: must be an http(s) URL'
  // ASVS 5.0 12.3.1: a forged answer could refuse every password or pass breached ones.
  if (production && url?.startsWith('http://') && !isLocalHost(new URL(url).hostname)) {
    return 'PWNED_PASSWORDS_URL is invalid: a non-loopback host needs https:// when NODE_ENV=production'
  }
  // The range check must end (and fail open or closed as told) before the request's own deadline.
  if (url && config.PWNED_PASSWORDS_TIMEOUT_MS >= config.DATABASE_STATEMENT_TIMEOUT_MS) {
    return 'PWNED_PASSWORDS_TIMEOUT_MS is invalid: must be less than DATABASE_STATEMENT_TIMEOUT_MS'
  }
  return null
}

/** Reads and validates configuration, or prints one line and exits 1. */
export function configOrExit(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    readDotEnv('.env', env)
    return loadConfig(env)
  } catch (error) {
    const message = error instanceof ConfigError ? error.message : String((error as Error).message ?? error)
    console.error(`bulwark: invalid configuration: ${message}`)
    process.exit(1)
  }
}

/** Names of the settings that fell back to a development default, for the boot log. */
export function developmentDefaults(config: Config): string[] {
  if (config.NODE_ENV === 'production') return []
  const used: string[] = []
  if (config.JWT_SECRET === DEV_JWT_SECRET) used.push('JWT_SECRET')
  if (config.DATA_ENCRYPTION_KEYS === DEV_DATA_ENCRYPTION_KEYS) used.push('DATA_ENCRYPTION_KEYS')
  if (config.DATA_INDEX_KEY === DEV_DATA_INDEX_KEY) used.push('DATA_INDEX_KEY')
  if (config.PASSWORD_PEPPER === DEV_PASSWORD_PEPPER) used.push('PASSWORD_PEPPER')
  if (!config.DATABASE_URL) used.push('DATABASE_URL (embedded PostgreSQL)')
  return used
}
