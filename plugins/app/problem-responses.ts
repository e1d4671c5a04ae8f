import type { FastifyInstance, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { ProblemSchema } from '../../schemas/common.js'

/** Every documented route also declares its 4xx/5xx problem responses. */

/**
 * Any route can also answer with a problem (rate limit, load shedding, a lost database, a fault):
 * declare `4xx` and `5xx` as problem+json on every documented route, so the schema (and OpenAPI)
 * covers every status it can send. Route-specific codes keep their own entries.
 */
async function problemResponsesPlugin(app: FastifyInstance) {
  app.addHook('onRoute', function declareProblems(route: RouteOptions) {
    if (!route.schema || route.schema.hide) return
    const declared = (route.schema.response ?? {}) as Record<string, unknown>
    route.schema.response = { '4xx': ProblemSchema, '5xx': ProblemSchema, ...declared }
  })
}

export default fp(problemResponsesPlugin, { name: 'problem-responses' })
