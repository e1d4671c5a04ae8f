import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'

/** The request deadline: a request still waiting on the database past its bound answers 503. */

/** Past the statement timeout, so a request's one blocked statement fails by itself first (57014/55P03). */
const MARGIN_MS = 500

/** True once Fastify's handlerTimeout has answered this request (request.signal carries its error). */
export const deadlinePassed = (request: FastifyRequest) =>
  request.signal.aborted && (request.signal.reason as { code?: string })?.code === 'FST_ERR_HANDLER_TIMEOUT'

/**
 * The statement timeout bounds one statement, not a request queued behind busy connections (postgres.js
 * has no acquire timeout and hands its whole queue to the first free connection: measured, 30 requests
 * on a pool of 3 waited up to 14 s at a 1 s bound). Fastify's own handlerTimeout bounds the whole
 * request, hooks included, and answers through the error handler (503 with Retry-After); this plugin
 * sets it on every route and keeps a handler that settles after it from sending twice or logging an
 * error (OWASP ASVS 5.0 15.2.2).
 */
async function dbDeadlinePlugin(app: FastifyInstance) {
  const deadline = app.config.DATABASE_STATEMENT_TIMEOUT_MS + MARGIN_MS

  app.addHook('onRoute', function boundRoute(route: RouteOptions) {
    // A route that never waits on the database (liveness) needs no deadline: Fastify's costs an
    // AbortController, a timer and an AbortError per request.
    if ((route.config as { database?: boolean } | undefined)?.database === false) return
    // Fastify's handlerTimeout rather than a timer of ours: it also covers hooks (authenticate queries).
    route.handlerTimeout ??= deadline
    const handler = route.handler
    route.handler = function deadlineAware(
      this: FastifyInstance,
      request: FastifyRequest,
      reply: FastifyReply,
    ) {
      const result = handler.call(this, request, reply)
      if (!(result instanceof Promise)) return result
      return result.then(
        (value) => (deadlinePassed(request) ? late(request) : value),
        (error: unknown) => {
          if (!deadlinePassed(request)) throw error
          return late(request, error)
        },
      )
    }
  })
}

/** The 503 is already sent: note how the work ended, and give Fastify nothing more to send. */
function late(request: FastifyRequest, error?: unknown): undefined {
  const code = (error as { code?: string } | undefined)?.code
  request.log.info(
    { event: 'request.late_result', failed: error !== undefined, code },
    'work ended after the deadline',
  )
  return undefined
}

export default fp(dbDeadlinePlugin, { name: 'db-deadline', dependencies: ['config'] })
