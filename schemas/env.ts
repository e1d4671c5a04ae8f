import { type StaticDecode, Type } from '@sinclair/typebox'

/** The settings schema: every environment variable, its type, bounds and default. */

/** Development-only signing secret: refused in production, where JWT_SECRET must be set. */
export const DEV_JWT_SECRET = 'bulwark-development-secret-do-not-use-in-production'
/** Development-only data keys (public, like the JWT secret): production must set its own. */
export const DEV_DATA_ENCRYPTION_KEYS = 'dev:ZGV2ZWxvcG1lbnQtb25seS1kYXRhLWtleS0zMmJ5dGU='
export const DEV_DATA_INDEX_KEY = 'ZGV2ZWxvcG1lbnQtb25seS1pbmRleC1rZXktMzJieXQ='
/** Development-only password pepper (public, like the data keys): production must set its own. */
export const DEV_PASSWORD_PEPPER = 'ZGV2ZWxvcG1lbnQtb25seS1wYXNzd29yZC1wZXBwZXItMzI='

/** A comma-separated setting, split once when the configuration is read: its trimmed, non-empty entries. */
const List = (maxLength: number) =>
  Type.Transform(Type.String({ maxLength, default: '' }))
    .Decode((value) =>
      value
        .split(',')
        .map((entry) => entry.trim())
        .filter(Boolean),
    )
    .Encode((entries) => entries.join(','))

/** The OTLP transports the service ships (gRPC is not one: its client is a large dependency). */
const OtlpProtocol = Type.Union([Type.Literal('http/protobuf'), Type.Literal('http/json')])

/**
 * Every setting the service reads. Values arrive as strings and are converted, defaulted and
 * validated once at boot; `Config` below is derived from this schema and never written by hand.
 */
export const EnvSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('test'), Type.Literal('production')], {
    default: 'development',
  }),
  HOST: Type.String({ minLength: 1, maxLength: 255, default: '127.0.0.1' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  LOG_LEVEL: Type.Union(
    [
      Type.Literal('fatal'),
      Type.Literal('error'),
      Type.Literal('warn'),
      Type.Literal('info'),
      Type.Literal('debug'),
      Type.Literal('trace'),
      Type.Literal('silent'),
    ],
    { default: 'info' },
  ),
  /** auto: pino-pretty's readable lines outside production on a terminal, JSON otherwise. */
  LOG_FORMAT: Type.Union([Type.Literal('auto'), Type.Literal('json'), Type.Literal('pretty')], {
    default: 'auto',
  }),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://', maxLength: 2048 })),
  DATABASE_MIGRATION_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://', maxLength: 2048 })),
  DATABASE_ALLOW_SUPERUSER: Type.Boolean({ default: false }),
  DATABASE_CA_FILE: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
  DATABASE_TLS: Type.Optional(Type.Literal('disable')),
  DATABASE_STATEMENT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 5000 }),
  DATABASE_LOCK_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 2000 }),
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 10_000 }),
  DATABASE_POOL_MAX: Type.Integer({ minimum: 1, maximum: 500, default: 10 }),
  DATABASE_CONNECT_TIMEOUT_SECONDS: Type.Integer({ minimum: 1, maximum: 120, default: 5 }),
  MIGRATE_ON_START: Type.Boolean({ default: true }),
  JWT_SECRET: Type.String({ minLength: 32, maxLength: 4096, default: DEV_JWT_SECRET }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, maximum: 104_857_600, default: 65_536 }),
  REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 30_000 }),
  HEADERS_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 10_000 }),
  KEEP_ALIVE_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 72_000 }),
  SHUTDOWN_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000 }),
  SHUTDOWN_DELAY_MS: Type.Integer({ minimum: 0, maximum: 300_000, default: 0 }),
  SHUTDOWN_CLOSE_LISTENER_FIRST: Type.Boolean({ default: false }),
  EMBEDDED_DB_DIR: Type.String({ minLength: 1, maxLength: 1024, default: '.data/postgres' }),
  EMBEDDED_DB_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 0 }),
  BCRYPT_COST: Type.Integer({ minimum: 4, maximum: 15, default: 12 }),
  // NIST SP 800-63B-4 §3.1.1.2: 15 for a password used alone; production refuses less than 8.
  PASSWORD_MIN_LENGTH: Type.Integer({ minimum: 1, maximum: 64, default: 15 }),
  PASSWORD_PEPPER: Type.String({
    minLength: 1,
    maxLength: 1024,
    pattern: '^[A-Za-z0-9+/_-]+={0,2}$',
    default: DEV_PASSWORD_PEPPER,
  }),
  PWNED_PASSWORDS_URL: Type.Optional(Type.String({ pattern: '^https?://[^?#]+$', maxLength: 2048 })),
  PWNED_PASSWORDS_FAIL_OPEN: Type.Boolean({ default: true }),
  PWNED_PASSWORDS_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 30_000, default: 2000 }),
  ACCESS_TOKEN_TTL_SECONDS: Type.Integer({ minimum: 60, maximum: 86_400, default: 900 }),
  REFRESH_TOKEN_TTL_SECONDS: Type.Integer({ minimum: 300, maximum: 31_536_000, default: 604_800 }),
  SESSION_MAX_AGE_SECONDS: Type.Integer({ minimum: 300, maximum: 31_536_000, default: 2_592_000 }),
  REFRESH_REUSE_GRACE_SECONDS: Type.Integer({ minimum: 0, maximum: 60, default: 10 }),
  JWT_ISSUER: Type.String({ minLength: 1, maxLength: 255, default: 'bulwark' }),
  JWT_AUDIENCE: Type.String({ minLength: 1, maxLength: 255, default: 'bulwark-api' }),
  JWT_PRIVATE_KEY: Type.Optional(Type.String({ minLength: 64, maxLength: 16_384 })),
  JWT_PUBLIC_KEY: Type.Optional(Type.String({ minLength: 64, maxLength: 16_384 })),
  JWT_PREVIOUS_PUBLIC_KEY: Type.Optional(Type.String({ minLength: 64, maxLength: 16_384 })),
  COOKIE_SECURE: Type.Boolean(),
  // Production refuses COOKIE_SECURE=false unless this says so (and the boot log warns).
  ALLOW_INSECURE_COOKIES: Type.Boolean({ default: false }),
  CORS_ORIGINS: List(8192),
  DOCS_ENABLED: Type.Boolean(),
  TRUST_PROXY: List(4096),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', maxLength: 2048 })),
  REDIS_CA_FILE: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
  REDIS_TLS: Type.Optional(Type.Literal('disable')),
  // OpenTelemetry tracing, off unless an OTLP endpoint is set: only the settings that decide whether it
  // runs and which exporter loads are read here; the SDK reads its other OTEL_* variables itself.
  OTEL_SDK_DISABLED: Type.Boolean({ default: false }),
  OTEL_TRACES_EXPORTER: Type.Union([Type.Literal('otlp'), Type.Literal('none')], { default: 'otlp' }),
  OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 2048 })),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 2048 })),
  OTEL_EXPORTER_OTLP_PROTOCOL: Type.Optional(OtlpProtocol),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: Type.Optional(OtlpProtocol),
  DATA_ENCRYPTION_KEYS: Type.String({ minLength: 1, maxLength: 8192, default: DEV_DATA_ENCRYPTION_KEYS }),
  DATA_INDEX_KEY: Type.String({ minLength: 1, maxLength: 1024, default: DEV_DATA_INDEX_KEY }),
  RATE_LIMIT_KEY_PREFIX: Type.String({
    minLength: 1,
    maxLength: 64,
    pattern: '^[A-Za-z0-9:_-]+$',
    default: 'bulwark:',
  }),
  RATE_LIMIT_MAX: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 100 }),
  RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 900_000 }),
  LOGIN_RATE_LIMIT_MAX: Type.Integer({ minimum: 1, maximum: 10_000, default: 5 }),
  LOGIN_RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 300_000 }),
  LOGIN_ACCOUNT_MAX_FAILURES: Type.Integer({ minimum: 1, maximum: 10_000, default: 10 }),
  LOGIN_ACCOUNT_WINDOW_MS: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 900_000 }),
  // OWASP device cookies: a client that signed in before has its own failure budget per window.
  LOGIN_DEVICE_MAX_FAILURES: Type.Integer({ minimum: 1, maximum: 10_000, default: 10 }),
  DEVICE_COOKIE_MAX_AGE_SECONDS: Type.Integer({ minimum: 3600, maximum: 63_072_000, default: 15_552_000 }),
  /** Roles whose routes need a second factor in the session (OWASP ASVS 5.0 6.3.3): `admin`, `user`. */
  MFA_REQUIRED_ROLES: List(64),
  MFA_TOTP_ISSUER: Type.String({ minLength: 1, maxLength: 64, pattern: '^[^:]+$', default: 'Bulwark' }),
  REAUTH_MAX_AGE_SECONDS: Type.Integer({ minimum: 30, maximum: 86_400, default: 300 }),
  REGISTER_RATE_LIMIT_MAX: Type.Integer({ minimum: 1, maximum: 10_000, default: 10 }),
  REGISTER_RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 3_600_000 }),
  REFRESH_RATE_LIMIT_MAX: Type.Integer({ minimum: 1, maximum: 100_000, default: 60 }),
  REFRESH_RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 900_000 }),
  UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 1000 }),
  UNDER_PRESSURE_MAX_HEAP_USED_BYTES: Type.Integer({ minimum: 0, default: 0 }),
  UNDER_PRESSURE_MAX_RSS_BYTES: Type.Integer({ minimum: 0, default: 0 }),
  UNDER_PRESSURE_SAMPLE_INTERVAL_MS: Type.Integer({ minimum: 10, maximum: 60_000, default: 1000 }),
  MAX_PARAM_LENGTH: Type.Integer({ minimum: 36, maximum: 2048, default: 100 }),
  // Prometheus metrics on a listener of their own; unset METRICS_PORT turns them off (README, Metrics).
  METRICS_HOST: Type.String({ minLength: 1, maxLength: 255, default: '127.0.0.1' }),
  METRICS_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  PUBLIC_ORIGIN: Type.Optional(Type.String({ pattern: '^https?://[^/?#]+$', maxLength: 2048 })),
  // Mail (README, Mail): SMTP when SMTP_URL is set, else .eml files in MAIL_DIR outside production.
  SMTP_URL: Type.Optional(Type.String({ pattern: '^smtps?://[^\\s]+$', maxLength: 2048 })),
  MAIL_FROM: Type.String({
    minLength: 3,
    maxLength: 320,
    pattern: '@',
    default: 'Bulwark <bulwark@localhost>',
  }),
  /** The base of the links in mails (the app that reads the token from the link's fragment). */
  PUBLIC_APP_URL: Type.Optional(Type.String({ pattern: '^https?://[^?#\\s]+$', maxLength: 2048 })),
  MAIL_DISABLED: Type.Boolean({ default: false }),
  MAIL_DIR: Type.String({ minLength: 1, maxLength: 1024, default: '.data/mail' }),
  MAIL_POLL_INTERVAL_MS: Type.Integer({ minimum: 10, maximum: 60_000, default: 1000 }),
  MAIL_MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 50, default: 8 }),
  MAIL_RETRY_BASE_MS: Type.Integer({ minimum: 10, maximum: 3_600_000, default: 30_000 }),
  MAIL_RATE_LIMIT_MAX: Type.Integer({ minimum: 1, maximum: 10_000, default: 5 }),
  MAIL_RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 3_600_000 }),
  TOKEN_RATE_LIMIT_MAX: Type.Integer({ minimum: 1, maximum: 10_000, default: 10 }),
  TOKEN_RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 900_000 }),
  EMAIL_VERIFICATION_TTL_SECONDS: Type.Integer({ minimum: 300, maximum: 604_800, default: 86_400 }),
  PASSWORD_RESET_TTL_SECONDS: Type.Integer({ minimum: 300, maximum: 86_400, default: 1800 }),
  REQUIRE_VERIFIED_EMAIL: Type.Boolean({ default: false }),
  // Passkeys (README, Passkeys): lib/webauthn-config.ts fills the defaults and checks them at boot.
  WEBAUTHN_RP_ID: Type.Optional(Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.-]+$' })),
  WEBAUTHN_RP_NAME: Type.String({ minLength: 1, maxLength: 64, default: 'Bulwark' }),
  /** Exact origins allowed to run ceremonies; `none` turns passkeys off. */
  WEBAUTHN_ORIGINS: List(4096),
  PASSKEY_LOGIN_RATE_LIMIT_MAX: Type.Integer({ minimum: 1, maximum: 100_000, default: 30 }),
  PASSKEY_LOGIN_RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 300_000 }),
  // API keys for machine clients (README, API keys).
  API_KEYS_MAX_PER_USER: Type.Integer({ minimum: 1, maximum: 1000, default: 20 }),
  API_KEY_MAX_EXPIRES_DAYS: Type.Integer({ minimum: 1, maximum: 3650, default: 365 }),
  API_KEYS_REVOKE_ON_PASSWORD_CHANGE: Type.Boolean({ default: true }),
  API_KEY_LAST_USED_FLUSH_MS: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 60_000 }),
  API_KEY_RATE_LIMIT_MAX: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 100 }),
  API_KEY_RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 900_000 }),
})

export type Config = StaticDecode<typeof EnvSchema>

/** Settings that have no default in production: the service refuses to start without them. */
export const REQUIRED_IN_PRODUCTION = [
  'DATABASE_URL',
  'JWT_SECRET',
  'DATA_ENCRYPTION_KEYS',
  'DATA_INDEX_KEY',
  'PASSWORD_PEPPER',
] as const

/** Secrets that may also come from a file named by `<NAME>_FILE` (Docker and Kubernetes secrets). */
export const SECRET_SETTINGS = [
  'JWT_SECRET',
  'JWT_PRIVATE_KEY',
  'JWT_PUBLIC_KEY',
  'JWT_PREVIOUS_PUBLIC_KEY',
  'DATABASE_URL',
  'DATABASE_MIGRATION_URL',
  'REDIS_URL',
  'DATA_ENCRYPTION_KEYS',
  'DATA_INDEX_KEY',
  'PASSWORD_PEPPER',
  'SMTP_URL',
] as const
