import { existsSync } from 'node:fs'
import { isIP } from 'node:net'
import { Value } from '@sinclair/typebox/value'
import { type Config, DEV_JWT_SECRET, EnvSchema, REQUIRED_IN_PRODUCTION } from '../schemas/env.js'

/** Settings from the environment: read, converted and validated once, with one-line errors for operators. */

/** A configuration problem: its message is the one line an operator sees before exit code 1. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Reads `.env` into process.env when present; variables already set in the environment win. */
export function readDotEnv(path = '.env'): void {
  if (existsSync(path)) process.loadEnvFile(path)
}

/**
 * Validates the environment once against schemas/env.ts. Empty strings count as unset, unknown
 * variables are ignored, and a bad value throws a ConfigError naming the variable (never its value,
 * which may be a secret).
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
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
  return Object.freeze(config)
}

/** Reads and validates configuration, or prints one line and exits 1. */
export function configOrExit(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    readDotEnv()
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
  if (!config.DATABASE_URL) used.push('DATABASE_URL (embedded PostgreSQL)')
  return used
}
