import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ConfigError } from '../../lib/config.js'
import { AppError, unavailable } from '../../lib/errors.js'
import { migrationsCurrent } from '../../lib/migrator.js'
import { ProblemSchema, ref, StatusOkSchema } from '../../schemas/common.js'

const READINESS_TIMEOUT_MS = 2000
/** How long one readiness answer is reused. */
const READY_CACHE_MS = 1000

const notReady = (detail: string) => unavailable('not-ready', detail, 5)

/** Liveness and readiness for the gateway or orchestrator: no auth, never rate limited. */
const health: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/live',
    {
      // Liveness answers even under load shedding: the process is alive, just busy.
      // No database, so no request deadline (plugins/app/db-deadline.ts).
      config: { rateLimit: false, pressureHandler: () => undefined, database: false },
      schema: {
        tags: ['health'],
        operationId: 'checkLiveness',
        summary: 'Liveness: the process answers',
        security: [],
        response: { 200: ref(StatusOkSchema, { description: 'The process is alive' }) },
      },
    },
    async function live() {
      return { status: 'ok' as const }
    },
  )

  /** Migrations current and privileges as allowed, within a bound; throws a not-ready problem. */
  async function probeDatabase(): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    // The probe goes through the request pool, so a saturated pool reports here. It is given up on
    // within the statement timeout, inside the request deadline; the query left queued is itself
    // bounded by the pool's statement and lock timeouts, so probes cannot pile up without end.
    const bound = Math.min(READINESS_TIMEOUT_MS, app.config.DATABASE_STATEMENT_TIMEOUT_MS)
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(notReady('The database is saturated or not answering.')), bound)
    })
    try {
      const current = await Promise.race([migrationsCurrent(app.sql, app.latestMigrationId), timeout])
      if (!current) throw notReady('Database migrations are pending.')
      // Never ready on a connection with more privileges than allowed (checked here if the database was down at boot).
      await Promise.race([app.checkDatabasePrivileges(), timeout])
    } catch (error) {
      if (error instanceof AppError) throw error
      if (error instanceof ConfigError) {
        app.log.error({ event: 'health.excess_privileges' }, error.message)
        throw notReady('The database connection has more privileges than allowed.')
      }
      app.log.warn(
        { event: 'health.not_ready', code: (error as { code?: string }).code },
        'database not ready',
      )
      throw notReady('The database is not available.')
    } finally {
      clearTimeout(timer)
    }
  }
  let cached: { at: number; probe: Promise<void> } | undefined

  app.get(
    '/ready',
    {
      config: { rateLimit: false },
      schema: {
        tags: ['health'],
        operationId: 'checkReadiness',
        summary: 'Readiness: database reachable and migrated',
        security: [],
        response: {
          200: ref(StatusOkSchema, { description: 'Ready for traffic' }),
          503: ref(ProblemSchema, {
            description: 'Not ready (not-ready): migrations pending, database down, or draining',
          }),
        },
      },
    },
    async function ready() {
      if (app.lifecycle.draining) throw notReady('The service is shutting down.')
      // One database probe serves every readiness call within READY_CACHE_MS: a flood of probes
      // (or of clients) cannot turn into a flood of queries.
      const now = Date.now()
      if (!cached || now - cached.at >= READY_CACHE_MS) cached = { at: now, probe: probeDatabase() }
      await cached.probe
      return { status: 'ok' as const }
    },
  )
}

export default health
