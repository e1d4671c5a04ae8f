import type { FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import type { Redis } from 'ioredis'

/** Fixed-window counters for every limit we keep (global, register, refresh, login), in Redis or memory. */

export interface Count {
  count: number
  /** Milliseconds until the window resets. */
  ttlMs: number
}

/** Fixed-window counters shared by every replica (Redis) or local to one (memory). */
export interface CounterStore {
  increment(key: string, windowMs: number): Promise<Count>
  /** Gives one back (never below zero); the window is unchanged. */
  decrement(key: string): Promise<void>
}

/** The store could not be reached; callers that must fail closed turn this into a 503. */
export class StoreUnavailable extends Error {
  override name = 'StoreUnavailable'
}

export class MemoryCounterStore implements CounterStore {
  readonly #counts = new Map<string, { count: number; resetAt: number }>()
  readonly #sweep: NodeJS.Timeout

  /**
   * @param maxKeys beyond this many keys the oldest window is dropped (bounded memory for per-address
   * request limits); the login budgets keep the default, so spraying keys can never evict them.
   */
  constructor(private readonly maxKeys = Number.POSITIVE_INFINITY) {
    this.#sweep = setInterval(() => {
      const now = Date.now()
      for (const [key, entry] of this.#counts) if (entry.resetAt <= now) this.#counts.delete(key)
    }, 60_000)
    this.#sweep.unref()
  }

  async increment(key: string, windowMs: number): Promise<Count> {
    const now = Date.now()
    let entry = this.#counts.get(key)
    if (!entry || entry.resetAt <= now) {
      entry = { count: 0, resetAt: now + windowMs }
      this.#counts.delete(key) // re-inserted last: Map order is then oldest window first
      this.#counts.set(key, entry)
      if (this.#counts.size > this.maxKeys) this.#counts.delete(this.#counts.keys().next().value as string)
    }
    entry.count += 1
    return { count: entry.count, ttlMs: entry.resetAt - now }
  }

  async decrement(key: string): Promise<void> {
    const entry = this.#counts.get(key)
    if (entry && entry.count > 0) entry.count -= 1
  }

  close(): void {
    clearInterval(this.#sweep)
  }
}

export class RedisCounterStore implements CounterStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async increment(key: string, windowMs: number): Promise<Count> {
    try {
      // One round trip: count, start the window on first use only (NX), read what is left of it.
      const results = await this.redis
        .multi()
        .incr(this.prefix + key)
        .pexpire(this.prefix + key, windowMs, 'NX')
        .pttl(this.prefix + key)
        .exec()
      const count = Number(results?.[0]?.[1] ?? 0)
      const ttlMs = Number(results?.[2]?.[1] ?? windowMs)
      return { count, ttlMs: ttlMs > 0 ? ttlMs : windowMs }
    } catch (error) {
      throw new StoreUnavailable('rate-limit store unavailable', { cause: error })
    }
  }

  async decrement(key: string): Promise<void> {
    try {
      // Only an existing key: a DECR on a missing one would create it without an expiry.
      await this.redis.eval(
        "if redis.call('exists', KEYS[1]) == 1 and tonumber(redis.call('get', KEYS[1])) > 0 then return redis.call('decr', KEYS[1]) end return 0",
        1,
        this.prefix + key,
      )
    } catch (error) {
      throw new StoreUnavailable('rate-limit store unavailable', { cause: error })
    }
  }
}

type Callback = (error: Error | null, result?: { current: number; ttl: number }) => void

/**
 * @fastify/rate-limit's custom-store interface over our CounterStore, looked up when a request is
 * counted rather than when the limiter is registered: the limiter loads with the external plugins,
 * the Redis connection with ours. Keys are `<namespace><route>-<key>` as in the plugin's own stores.
 */
export function rateLimitStore(counters: () => CounterStore, namespace: string) {
  return class CounterRateLimitStore {
    constructor(
      _options?: unknown,
      private readonly prefix = namespace,
    ) {}

    incr(key: string, callback: Callback, timeWindow?: number): void {
      counters()
        .increment(this.prefix + key, timeWindow ?? 60_000)
        .then(({ count, ttlMs }) => callback(null, { current: count, ttl: ttlMs }), callback)
    }

    /**
     * A route with limits of its own (register, refresh) counts in keys of its own; a limiter made
     * with `app.rateLimit(options)` (no route) counts in the global keys.
     */
    child(params: { routeInfo?: { method?: unknown; url?: unknown } }): CounterRateLimitStore {
      const route = params.routeInfo ?? {}
      if (route.url === undefined) return this
      return new CounterRateLimitStore(undefined, `${this.prefix}${route.method}${route.url}-`)
    }
  } as unknown as FastifyRateLimitStoreCtor
}
