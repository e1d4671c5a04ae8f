import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import { ConfigError } from '../../lib/config.js'
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
/** The counters start their window with `PEXPIRE … NX`, a Redis 7.0 option (Valkey reports 7.2 or later). */
export const MIN_REDIS_VERSION = '7.0'
/** How long boot waits for the first connection to check the server's version. */
const BOOT_CONNECT_WAIT_MS = 2500

/**
 * The server's version from INFO, or null when it cannot be read (INFO renamed, an ACL) or does not
 * answer within boundMs: boot never waits on it for longer.
 */
async function redisVersion(redis: Redis, boundMs = BOOT_CONNECT_WAIT_MS): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined
  const silent = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(''), boundMs)
  })
  const info = await Promise.race([redis.info('server').catch(() => ''), silent])
  clearTimeout(timer)
  return /^redis_version:(\d+\.\d+(?:\.\d+)?)/m.exec(info)?.[1] ?? null
}

export function versionSupported(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number)
  const [minMajor = 0, minMinor = 0] = MIN_REDIS_VERSION.split('.').map(Number)
  return major > minMajor || (major === minMajor && minor >= minMinor)
}

/** Resolves true once connected, false on the first error or after the bound (Redis down is not fatal). */
function firstConnection(redis: Redis): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (connected: boolean) => {
      clearTimeout(timer)
      redis.off('ready', onReady)
      redis.off('error', onError)
      resolve(connected)
    }
    const onReady = () => done(true)
    const onError = () => done(false)
    const timer = setTimeout(() => done(false), BOOT_CONNECT_WAIT_MS)
    redis.once('ready', onReady)
    redis.once('error', onError)
  })
}
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
  const unsupported = (version: string) =>
    `Redis ${version} at REDIS_URL is too old: the service needs Redis ${MIN_REDIS_VERSION} or later`
  if (await firstConnection(redis)) {
    const version = await redisVersion(redis)
    if (version === null) {
      app.log.warn(
        { event: 'redis.version_unknown' },
        'could not read the Redis version (INFO refused or not answered)',
      )
    } else if (!versionSupported(version)) {
      redis.disconnect()
      throw new ConfigError(unsupported(version))
    }
  }
  // Connected later, or reconnected to another server (a failover): it may be older; its counter commands would then fail.
  redis.on('ready', () => {
    void redisVersion(redis).then((version) => {
      if (version && !versionSupported(version))
        app.log.error({ event: 'redis.version_unsupported', version }, unsupported(version))
    })
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
