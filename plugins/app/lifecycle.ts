import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

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
}

export default fp(lifecyclePlugin, { name: 'lifecycle' })
