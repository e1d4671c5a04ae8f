import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import postgres, { type Sql } from 'postgres'
import { ConfigError } from '../../lib/config.js'
import { grantRuntime } from '../../lib/db-roles.js'
import { postgresTls } from '../../lib/db-tls.js'
import { unavailable } from '../../lib/errors.js'
import type { FieldCipher } from '../../lib/field-crypto.js'
import { migrate, readMigrations } from '../../lib/migrator.js'
import type { Config } from '../../schemas/env.js'
import { reencrypt } from '../../services/data-keys.js'
import { isDatabaseUnavailable } from '../errors.js'

/** The database pool (app.sql), migrations at start, and the runtime connection's privilege check. */

declare module 'fastify' {
  interface FastifyInstance {
    sql: Sql
    /** Highest migration id this build ships; readiness requires the database to have it. */
    latestMigrationId: number
    /** Resolves when the runtime connection's privileges passed the boot check (run late if the database was down). */
    checkDatabasePrivileges: () => Promise<void>
  }
}

export function createSql(
  config: Pick<
    Config,
    | 'DATABASE_URL'
    | 'DATABASE_CA_FILE'
    | 'DATABASE_POOL_MAX'
    | 'DATABASE_CONNECT_TIMEOUT_SECONDS'
    | 'DATABASE_STATEMENT_TIMEOUT_MS'
    | 'DATABASE_LOCK_TIMEOUT_MS'
    | 'DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS'
  >,
): Sql {
  if (!config.DATABASE_URL) throw new Error('DATABASE_URL is not set')
  return postgres(config.DATABASE_URL, {
    max: config.DATABASE_POOL_MAX,
    connect_timeout: config.DATABASE_CONNECT_TIMEOUT_SECONDS,
    idle_timeout: 60,
    transform: postgres.camel,
    onnotice: () => {},
    // Every connection bounds its waits: a slow statement, a lock wait or a forgotten transaction
    // fails (503) instead of holding a pool connection without end (OWASP ASVS 5.0 15.2.2).
    connection: {
      application_name: 'bulwark',
      statement_timeout: config.DATABASE_STATEMENT_TIMEOUT_MS,
      lock_timeout: config.DATABASE_LOCK_TIMEOUT_MS,
      idle_in_transaction_session_timeout: config.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    },
    // The URL's sslmode with libpq's meaning and DATABASE_CA_FILE (ASVS 5.0 12.3.2, 12.3.4).
    ssl: postgresTls(config.DATABASE_URL, config.DATABASE_CA_FILE),
  })
}

/** The migration role's connection: small, and with room for long batches (migrations set their own). */
export const OWNER_POOL = {
  DATABASE_POOL_MAX: 2,
  DATABASE_STATEMENT_TIMEOUT_MS: 600_000,
  DATABASE_LOCK_TIMEOUT_MS: 60_000,
} as const

/**
 * Migrations through the migration connection when DATABASE_MIGRATION_URL is set (else the runtime
 * one): the SQL files, then plaintext personal data from before encryption is encrypted, then the
 * runtime role is granted what its queries need (sql/grant-runtime.sql).
 */
export async function migrateDatabase(
  config: Parameters<typeof createSql>[0] & Pick<Config, 'DATABASE_MIGRATION_URL'>,
  runtime: Sql,
  cipher: FieldCipher,
  migrations = readMigrations(),
): Promise<{ applied: string[]; encrypted: number }> {
  const url = config.DATABASE_MIGRATION_URL
  const owner = url ? createSql({ ...config, ...OWNER_POOL, DATABASE_URL: url }) : runtime
  try {
    const { applied } = await migrate(owner, migrations)
    const { done: encrypted } = await reencrypt(owner, cipher, { legacy: true })
    if (url) {
      const [me] = await runtime<{ currentUser: string }[]>`select current_user`
      await grantRuntime(owner, me?.currentUser ?? '')
    }
    return { applied, encrypted }
  } finally {
    if (owner !== runtime) await owner.end({ timeout: 5 })
  }
}

/**
 * Superusers bypass every privilege: refused in production unless allowed (OWASP ASVS 5.0 13.2.2).
 * Throws a ConfigError when refused; resolves once checked.
 */
async function checkPrivileges(app: FastifyInstance, sql: Sql): Promise<void> {
  const [me] = await sql<{ superuser: boolean; ownsTables: boolean }[]>`
    select r.rolsuper as superuser,
           exists (select 1 from pg_tables where schemaname = 'public' and tableowner = current_user
                   and tablename in ('users', 'sessions', 'refresh_tokens', 'comments', 'audit_events')) as owns_tables
    from pg_roles r where r.rolname = current_user
  `
  const { NODE_ENV, DATABASE_ALLOW_SUPERUSER } = app.config
  if (me?.superuser && NODE_ENV === 'production' && !DATABASE_ALLOW_SUPERUSER) {
    throw new ConfigError(
      'DATABASE_URL is invalid: the runtime connection is a superuser; use the runtime role (or DATABASE_ALLOW_SUPERUSER=true)',
    )
  }
  if (me?.superuser || me?.ownsTables) {
    app.log.warn(
      { event: 'db.excess_privileges', superuser: me.superuser, ownsTables: me.ownsTables },
      'the runtime database connection has more privileges than it needs; see README, Database security',
    )
  }
}

async function dbPlugin(app: FastifyInstance) {
  const sql = createSql(app.config)
  const migrations = readMigrations()
  app.decorate('sql', sql)
  app.decorate('latestMigrationId', migrations.at(-1)?.id ?? 0)
  app.addHook('onClose', async function closePool() {
    await sql.end({ timeout: 5 })
  })
  try {
    if (app.config.MIGRATE_ON_START) {
      const { applied, encrypted } = await migrateDatabase(app.config, sql, app.cipher, migrations)
      if (applied.length > 0) app.log.info({ event: 'db.migrated', applied }, 'migrations applied')
      if (encrypted > 0)
        app.log.info({ event: 'db.encrypted', values: encrypted }, 'plaintext personal data encrypted')
    }
    await checkPrivileges(app, sql)
  } catch (error) {
    // A database that is down at boot is readiness's business; the check then runs with readiness.
    if (!isDatabaseUnavailable(error) || app.config.MIGRATE_ON_START) {
      await sql.end({ timeout: 1 })
      throw error
    }
    app.log.warn(
      { event: 'db.privileges_unchecked' },
      'database unavailable at boot: privileges checked later',
    )
    let pending: Promise<void> | undefined
    app.decorate('checkDatabasePrivileges', () => {
      pending ??= checkPrivileges(app, sql).catch((failure: unknown) => {
        if (!(failure instanceof ConfigError)) pending = undefined // try again on the next probe
        throw failure
      })
      return pending
    })
    // Until the check has passed, no request reaches the database on a connection it may refuse.
    let passed = false
    app.addHook('onRequest', async function privilegesChecked(request) {
      if (passed || request.url.startsWith('/health/')) return
      try {
        await app.checkDatabasePrivileges()
        passed = true
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error
        throw unavailable('not-ready', 'The database connection has more privileges than allowed.', 5)
      }
    })
    return
  }
  app.decorate('checkDatabasePrivileges', async () => {})
}

export default fp(dbPlugin, { name: 'db', dependencies: ['config'] })
