import type { FastifyInstance, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { Problem } from '../../schemas/common.js'

/** Every documented route also declares its 4xx/5xx problem responses, as application/problem+json. */

/** What each problem status means on this service, for the OpenAPI document. */
const MEANING: Record<string, string> = {
  400: 'The request is invalid: `errors` names each field (validation-error), or it cannot be parsed',
  401: 'No valid access token (unauthenticated, invalid-token), or wrong credentials',
  403: 'Not allowed: a missing role, a disabled account, or a cookie request from another origin (CSRF)',
  404: 'No such resource',
  409: 'In conflict with the current state (a taken name, an enrolment already done)',
  429: 'Too many requests: wait for Retry-After',
  501: 'This flow is off on this service: mail is disabled (MAIL_DISABLED=true, problem mail-disabled)',
  503: 'Temporarily unavailable (the database, load shedding, shutting down): retry after Retry-After',
  '4xx': 'A client error of another kind (413 body too large, 415 not JSON, 429 rate limited, ...)',
  '5xx': 'A server error (500) or temporary unavailability (503): retry after Retry-After',
}

/** The response entry of a problem: RFC 9457's media type, the shared Problem schema, and its meaning. */
const problemResponse = (status: string, schema: { description?: string }) => ({
  description: schema.description ?? MEANING[status] ?? 'A problem (RFC 9457)',
  content: { 'application/problem+json': { schema: Problem } },
})

const isProblem = (schema: unknown) => (schema as { $ref?: unknown } | null)?.$ref === Problem.$ref

/**
 * Any route can also answer with a problem (rate limit, load shedding, a lost database, a fault):
 * declare `4xx` and `5xx` on every documented route, so the schema (and OpenAPI) covers every status
 * it can send. Every error status is declared as application/problem+json, the type plugins/errors.ts
 * sends (with its own serializer, so these entries only document).
 */
async function problemResponsesPlugin(app: FastifyInstance) {
  app.addHook('onRoute', function declareProblems(route: RouteOptions) {
    if (!route.schema || route.schema.hide) return
    const declared = (route.schema.response ?? {}) as Record<string, unknown>
    const response: Record<string, unknown> = {}
    for (const [status, schema] of Object.entries({ '4xx': Problem, '5xx': Problem, ...declared })) {
      response[status] = isProblem(schema) ? problemResponse(status, schema as object) : schema
    }
    route.schema.response = response
  })
}

export default fp(problemResponsesPlugin, { name: 'problem-responses' })
