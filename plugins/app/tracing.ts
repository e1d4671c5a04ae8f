import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { addQueryObserver } from '../../lib/db-observer.js'
import { activeTracing } from '../../lib/tracing.js'

/**
 * A client span for each database query made inside a traced request, when tracing is on
 * (lib/tracing.ts); off, postgres.js is left untouched. The request spans come from @fastify/otel,
 * hooked in as the app was created; Redis and fetch spans from their diagnostics channels.
 */
async function tracingPlugin(app: FastifyInstance) {
  const tracing = activeTracing()
  if (!tracing) return
  const removeObserver = addQueryObserver(app.sql, tracing.queryObserver(app.sql))
  app.addHook('onClose', async function stopQuerySpans() {
    removeObserver()
  })
}

export default fp(tracingPlugin, { name: 'tracing', dependencies: ['db'] })
