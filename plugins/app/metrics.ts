import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import fp from 'fastify-plugin'
import { addQueryObserver } from '../../lib/db-observer.js'
import { isProblem } from '../../lib/errors.js'
import { createMetrics, type Limiter, type Metrics } from '../../lib/metrics.js'
import { type MetricsServer, serveMetrics } from '../../lib/metrics-server.js'
import type { LoginThrottle } from '../../services/login-throttle.js'

/**
 * Prometheus metrics when METRICS_PORT is set (README, Metrics). Off, `app.metrics` is null and no
 * hook, observer or registry exists. On, a request costs a counter step at each end and one
 * histogram observation; the scrape endpoint listens apart from the public port (server.ts).
 */

export interface AppMetrics extends Metrics {
  /** Starts the scrape listener on METRICS_HOST:METRICS_PORT (closed with the app); its URL. */
  listen(): Promise<string>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The instruments, or null when metrics are off: callers write `app.metrics?.…`. */
    metrics: AppMetrics | null
  }
}

/** The login throttle, counting each refusal by the budget that refused it. */
export function countedThrottle(throttle: LoginThrottle, metrics: Metrics, route: string | undefined) {
  const counted =
    <A extends unknown[]>(check: (...args: A) => Promise<void>, limiter: (...args: A) => Limiter) =>
    async (...args: A): Promise<void> => {
      try {
        await check(...args)
      } catch (error) {
        if (isProblem(error, 'rate-limited')) metrics.rateLimited(limiter(...args), route)
        throw error
      }
    }
  return {
    ...throttle,
    admitClient: counted(throttle.admitClient, () => 'login_address'),
    reserve: counted(throttle.reserve, (budget) => (budget.device ? 'login_device' : 'login_account')),
    reserveCode: counted(throttle.reserveCode, () => 'login_code'),
  } satisfies LoginThrottle
}

async function metricsPlugin(app: FastifyInstance) {
  const { METRICS_HOST, METRICS_PORT, DATABASE_POOL_MAX } = app.config
  if (METRICS_PORT === undefined) {
    app.decorate('metrics', null)
    return
  }
  const metrics = createMetrics({ poolMax: DATABASE_POOL_MAX })
  const stopObserving = addQueryObserver(app.sql, metrics.queryObserver)
  let server: MetricsServer | undefined
  app.decorate('metrics', {
    ...metrics,
    async listen() {
      server ??= await serveMetrics(metrics.registry, { host: METRICS_HOST, port: METRICS_PORT }, (err) =>
        app.log.error({ err, event: 'metrics.scrape_failed' }, 'metrics scrape failed'),
      )
      return server.url
    },
  })

  // Counted on the socket's request, before Fastify's router, so a URL the router refuses, a
  // request a hook answers and a client that hangs up are all counted in and out exactly once.
  function countInFlight(_req: IncomingMessage, res: ServerResponse) {
    metrics.requestStarted()
    res.once('close', metrics.requestClosed)
  }
  app.server.on('request', countInFlight)
  app.addHook(
    'onResponse',
    function observeResponse(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
      metrics.requestAnswered(request.method, request.routeOptions.url, reply.statusCode, reply.elapsedTime)
      done()
    },
  )
  app.addHook('onClose', async function closeMetrics() {
    app.server.off('request', countInFlight)
    stopObserving()
    await server?.close()
  })
}

export default fp(metricsPlugin, { name: 'metrics', dependencies: ['config', 'db'] })
