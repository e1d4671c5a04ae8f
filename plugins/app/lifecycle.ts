import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** Draining on shutdown: readiness turns 503 and keep-alive connections are told to close. */

declare module 'fastify' {
  interface FastifyInstance {
    lifecycle: { draining: boolean }
  }
}

/** Marks the instance as draining the moment close() begins, so readiness answers 503 at once. */
async function lifecyclePlugin(app: FastifyInstance) {
  const lifecycle = { draining: false }
  app.decorate('lifecycle', lifecycle)
  app.addHook('preClose', function startDraining(done) {
    lifecycle.draining = true
    done()
  })
  // A keep-alive connection whose request was in flight when close began would otherwise stay open
  // for KEEP_ALIVE_TIMEOUT_MS and hold shutdown: tell the client to reconnect elsewhere.
  app.addHook('onSend', async function closeWhileDraining(request, reply) {
    if (lifecycle.draining && request.raw.httpVersionMajor < 2) reply.header('connection', 'close')
  })
}

export default fp(lifecyclePlugin, { name: 'lifecycle' })
