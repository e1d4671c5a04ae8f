import rateLimit, { type FastifyRateLimitOptions } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { clientKey } from '../../lib/client-key.js'
import { rateLimitStore } from '../../lib/counter-store.js'
import { rateLimited } from '../../lib/errors.js'

/** The global limit's bucket for a client address (IPv6 by /64). */
export const addressKey = (address: string) => `ip:${clientKey(address)}`

const isKeyBucket = (key: string) => key.startsWith('key:')

/**
 * The global limit counts the signed-in user when a valid access token comes with the request
 * (so users behind one NAT do not share a budget), otherwise the client address (IPv6 by /64).
 * `request.ip` honours X-Forwarded-For only from TRUST_PROXY hops. Counters live in the shared
 * counter store (plugins/app/redis.ts: Redis when REDIS_URL is set), fetched when a request is
 * counted; if Redis is away this limit fails open (availability over limiting), and the redis
 * plugin logs it. Standard RateLimit-* headers (IETF draft), no legacy X-RateLimit-*.
 */
export const autoConfig = (app: FastifyInstance): FastifyRateLimitOptions => ({
  // Applied by plugins/app/global-rate-limit.ts as a root hook, ahead of every route's auth hooks.
  global: false,
  // An API key has a budget of its own (plugins/app/api-keys.ts: only once its secret was verified).
  max: (_request: FastifyRequest, key: string) =>
    isKeyBucket(key) ? app.config.API_KEY_RATE_LIMIT_MAX : app.config.RATE_LIMIT_MAX,
  timeWindow: (_request: FastifyRequest, key: string) =>
    isKeyBucket(key) ? app.config.API_KEY_RATE_LIMIT_WINDOW_MS : app.config.RATE_LIMIT_WINDOW_MS,
  enableDraftSpec: true,
  store: rateLimitStore(() => app.requestCounters, 'rl:'),
  skipOnError: true,
  keyGenerator: function rateLimitKey(request: FastifyRequest) {
    const keyId = app.peekApiKeyId(request)
    if (keyId) return `key:${keyId}`
    const userId = app.peekUserId(request)
    return userId ? `user:${userId}` : addressKey(request.ip)
  },
  // Counted per limiter when metrics are on: a route's own limit (register, refresh) or the global one.
  onExceeded: function countRejection(request: FastifyRequest) {
    const own = (request.routeOptions.config as { rateLimit?: unknown } | undefined)?.rateLimit
    app.metrics?.rateLimited(typeof own === 'object' && own ? 'route' : 'global', request.routeOptions.url)
  },
  // The plugin has set Retry-After and RateLimit-* already; the problem adds no headers of its own.
  errorResponseBuilder: () => rateLimited(),
})

export default rateLimit
