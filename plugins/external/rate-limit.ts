import rateLimit, { type FastifyRateLimitOptions } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { clientKey } from '../../services/client-key.js'
import { AppError } from '../../services/errors.js'

/**
 * The global limit counts the signed-in user when a valid access token comes with the request
 * (so users behind one NAT do not share a budget), otherwise the client address (IPv6 by /64).
 * `request.ip` honours X-Forwarded-For only from TRUST_PROXY hops. Counters live in Redis when
 * REDIS_URL is set; if Redis is away this limit fails open (availability over limiting), and the
 * redis plugin logs it. Standard RateLimit-* headers (IETF draft), no legacy X-RateLimit-*.
 */
export const autoConfig = (app: FastifyInstance): FastifyRateLimitOptions => ({
  // Applied by plugins/app/global-rate-limit.ts as a root hook, ahead of every route's auth hooks.
  global: false,
  max: app.config.RATE_LIMIT_MAX,
  timeWindow: app.config.RATE_LIMIT_WINDOW_MS,
  enableDraftSpec: true,
  ...(app.redis ? { redis: app.redis } : {}),
  nameSpace: `${app.config.RATE_LIMIT_KEY_PREFIX}rl:`,
  skipOnError: true,
  keyGenerator: function rateLimitKey(request: FastifyRequest) {
    const userId = app.peekUserId(request)
    return userId ? `user:${userId}` : `ip:${clientKey(request.ip)}`
  },
  errorResponseBuilder: (_request: FastifyRequest, context: { statusCode: number }) =>
    new AppError(context.statusCode, 'Too many requests. Try again later.', { type: 'rate-limited' }),
})

export default rateLimit
