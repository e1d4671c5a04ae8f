import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import { type CounterStore, MemoryCounterStore, RedisCounterStore } from '../../lib/counter-store.js'
import { redisTls } from '../../lib/db-tls.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Shared Redis connection when REDIS_URL is set (rate-limit counters across replicas). */
    redis: Redis | null
    /** Counters for the login limits, in Redis when configured; in memory they are never evicted. */
    counters: CounterStore
    /** Counters for the request limits (global, register, refresh); in memory, bounded in size. */
    requestCounters: CounterStore
  }
}

const LOG_EVERY_MS = 30_000
/** As @fastify/rate-limit's own in-memory store: at most this many clients are tracked at once. */
const REQUEST_COUNTERS_IN_MEMORY = 5000

/**
 * The counter stores every limit uses: Redis when REDIS_URL is set (shared by replicas), else
 * memory. The rate limiter fetches its store when it first counts, so this loads with our plugins.
 * Commands fail at once while Redis is away (no offline queue), so limits fail open or closed
 * without waiting.
 */
async function redisPlugin(app: FastifyInstance) {
  const { REDIS_URL, REDIS_CA_FILE, RATE_LIMIT_KEY_PREFIX } = app.config
  if (!REDIS_URL) {
    const logins = new MemoryCounterStore()
    const requests = new MemoryCounterStore(REQUEST_COUNTERS_IN_MEMORY)
    app.decorate('redis', null)
    app.decorate('counters', logins)
    app.decorate('requestCounters', requests)
    app.addHook('onClose', async () => {
      logins.close()
      requests.close()
    })
    return
  }
  const redis = new Redis(REDIS_URL, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    // rediss:// checks the chain and host name, against REDIS_CA_FILE when set (ASVS 5.0 12.3.2, 12.3.4).
    tls: redisTls(REDIS_URL, REDIS_CA_FILE),
  })
  let lastLogged = 0
  redis.on('error', (err: Error) => {
    if (Date.now() - lastLogged < LOG_EVERY_MS) return
    lastLogged = Date.now()
    app.log.warn(
      { event: 'redis.unavailable', err: { message: err.message } },
      'Redis unavailable: the global, register and refresh limits fail open; login answers 503',
    )
  })
  redis.on('ready', () => {
    if (lastLogged) app.log.info({ event: 'redis.ready' }, 'Redis connection restored')
    lastLogged = 0
  })
  app.decorate('redis', redis)
  const shared = new RedisCounterStore(redis, RATE_LIMIT_KEY_PREFIX)
  app.decorate('counters', shared)
  app.decorate('requestCounters', shared)
  app.addHook('onClose', async () => {
    redis.disconnect()
  })
}

export default fp(redisPlugin, { name: 'redis', dependencies: ['config'] })
