import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import postgres, { type Sql } from 'postgres'
import { migrate, readMigrations } from '../../lib/migrator.js'
import type { Config } from '../../schemas/env.js'

/** The database pool (app.sql) and migrations at start. */

declare module 'fastify' {
  interface FastifyInstance {
    sql: Sql
    /** Highest migration id this build ships; readiness requires the database to have it. */
    latestMigrationId: number
  }
}

export function createSql(
  config: Pick<Config, 'DATABASE_URL' | 'DATABASE_POOL_MAX' | 'DATABASE_CONNECT_TIMEOUT_SECONDS'>,
): Sql {
  if (!config.DATABASE_URL) throw new Error('DATABASE_URL is not set')
  return postgres(config.DATABASE_URL, {
    max: config.DATABASE_POOL_MAX,
    connect_timeout: config.DATABASE_CONNECT_TIMEOUT_SECONDS,
    idle_timeout: 60,
    transform: postgres.camel,
    onnotice: () => {},
    connection: { application_name: 'bulwark' },
  })
}

async function dbPlugin(app: FastifyInstance) {
  const sql = createSql(app.config)
  const migrations = readMigrations()
  app.decorate('sql', sql)
  app.decorate('latestMigrationId', migrations.at(-1)?.id ?? 0)
  app.addHook('onClose', async function closePool() {
    await sql.end({ timeout: 5 })
  })
  if (app.config.MIGRATE_ON_START) {
    const { applied } = await migrate(sql, migrations).catch(async (error: unknown) => {
      await sql.end({ timeout: 1 })
      throw error
    })
    if (applied.length > 0) app.log.info({ event: 'db.migrated', applied }, 'migrations applied')
  }
}

export default fp(dbPlugin, { name: 'db', dependencies: ['config'] })
