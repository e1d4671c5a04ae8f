import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { clientAddressOf } from '../../lib/client-key.js'
import { addressKey } from '../external/rate-limit.js'

/** The global rate limit, applied as a root hook ahead of every route's own hooks. */

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Counts a URL the router refused (server-options.ts) against its address's global budget;
     * throws the rate-limited problem when that is spent.
     */
    countRouterRefusal(request: FastifyRequest, reply: FastifyReply): Promise<void>
    /** The global limit's onRequest hook, also run ahead of cors's, which answers preflights itself. */
    globalRateLimit(request: FastifyRequest, reply: FastifyReply): Promise<void>
  }
}

/**
 * The global limit as a root onRequest hook: it runs before any route's own hooks, so requests that
 * authentication refuses (401/403, token probing) and unknown routes (404, scanning) are counted
 * too. Routes with a limit of their own (register, refresh) or `rateLimit: false` (health) skip it.
 */
async function globalRateLimitPlugin(app: FastifyInstance) {
  const limit = app.rateLimit()
  // The router answers before any hook: the request has no cookies parsed and no decorations, so a
  // refusal is counted by address alone, in the same bucket as the address's other requests. Fastify
  // builds that request from its bare class, whose `ip` ignores TRUST_PROXY: behind a gateway every
  // refusal would land in the gateway's bucket, so the forwarded address is read here as Fastify would.
  const addressOf = clientAddressOf(app.config.TRUST_PROXY)
  const byAddress = app.rateLimit({
    keyGenerator: (request) => addressKey(addressOf(request.raw)),
    onExceeded: () => app.metrics?.rateLimited('router', undefined),
  })
  app.decorate('countRouterRefusal', async (request: FastifyRequest, reply: FastifyReply) => {
    await byAddress.call(app, request, reply)
  })
  async function globalRateLimit(request: FastifyRequest, reply: FastifyReply) {
    const own = (request.routeOptions.config as { rateLimit?: unknown } | undefined)?.rateLimit
    if (own === false || (typeof own === 'object' && own !== null)) return
    await limit.call(app, request, reply) // counts once per request, whichever hook runs it first
  }
  app.decorate('globalRateLimit', globalRateLimit)
  app.addHook('onRequest', globalRateLimit)
}

export default fp(globalRateLimitPlugin, { name: 'global-rate-limit', dependencies: ['@fastify/rate-limit'] })
