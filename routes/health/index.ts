import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AppError, unavailable } from '../../lib/errors.js'
import { migrationsCurrent } from '../../lib/migrator.js'
import { ProblemSchema, StatusOkSchema } from '../../schemas/common.js'

const READINESS_TIMEOUT_MS = 2000

const notReady = (detail: string) => unavailable('not-ready', detail, 5)

/** Liveness and readiness for the gateway or orchestrator: no auth, never rate limited. */
const health: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/live',
    {
      // Liveness answers even under load shedding: the process is alive, just busy.
      config: { rateLimit: false, pressureHandler: () => undefined },
      schema: {
        tags: ['health'],
        summary: 'Liveness: the process answers',
        security: [],
        response: { 200: StatusOkSchema },
      },
    },
    async function live() {
      return { status: 'ok' as const }
    },
  )

  app.get(
    '/ready',
    {
      config: { rateLimit: false },
      schema: {
        tags: ['health'],
        summary: 'Readiness: database reachable and migrated',
        security: [],
        response: { 200: StatusOkSchema, 503: ProblemSchema },
      },
    },
    async function ready() {
      if (app.lifecycle.draining) throw notReady('The service is shutting down.')
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(notReady('The database did not answer in time.')),
          READINESS_TIMEOUT_MS,
        )
      })
      try {
        const current = await Promise.race([migrationsCurrent(app.sql, app.latestMigrationId), timeout])
        if (!current) throw notReady('Database migrations are pending.')
      } catch (error) {
        if (error instanceof AppError) throw error
        app.log.warn(
          { event: 'health.not_ready', code: (error as { code?: string }).code },
          'database not ready',
        )
        throw notReady('The database is not available.')
      } finally {
        clearTimeout(timer)
      }
      return { status: 'ok' as const }
    },
  )
}

export default health
