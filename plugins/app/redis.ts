import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import { type CounterStore, MemoryCounterStore, RedisCounterStore } from '../../lib/counter-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Shared Redis connection when REDIS_URL is set (rate-limit counters across replicas). */
    redis: Redis | null
    /** Counters for limits we keep ourselves (login), in Redis when configured. */
    counters: CounterStore
  }
}

const LOG_EVERY_MS = 30_000

/**
 * Registered before the external plugins, which take their store from it. Commands fail at once
 * while Redis is away (no offline queue), so limits can fail open or closed without waiting.
 */
async function redisPlugin(app: FastifyInstance) {
  const { REDIS_URL, RATE_LIMIT_KEY_PREFIX } = app.config
  if (!REDIS_URL) {
    const memory = new MemoryCounterStore()
    app.decorate('redis', null)
    app.decorate('counters', memory)
    app.addHook('onClose', async () => memory.close())
    return
  }
  const redis = new Redis(REDIS_URL, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
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
  app.decorate('counters', new RedisCounterStore(redis, RATE_LIMIT_KEY_PREFIX))
  app.addHook('onClose', async () => {
    redis.disconnect()
  })
}

export default fp(redisPlugin, { name: 'redis', dependencies: ['config'] })
