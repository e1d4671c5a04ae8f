import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Sql, TransactionSql } from 'postgres'
import { clientKey } from '../../lib/client-key.js'
import { createCursorCodec } from '../../lib/cursor.js'
import { createDeviceCookieCodec } from '../../lib/device-cookie.js'
import { blocklist } from '../../lib/password-blocklist.js'
import { createAudit } from '../../services/audit.js'
import type { ServiceContext } from '../../services/context.js'
import { createLoginThrottle } from '../../services/login-throttle.js'
import { prepareDummyHash } from '../../services/passwords.js'
import { deadlinePassed } from './db-deadline.js'
import { countedThrottle } from './metrics.js'

/** The service context: the one way a handler reaches a service, built from the request once per call. */

declare module 'fastify' {
  interface FastifyInstance {
    serviceContext: (request: FastifyRequest) => ServiceContext
  }
}

const MAX_USER_AGENT = 512

/**
 * The pool as one request sees it: a transaction that ends after the request's deadline rolls back
 * instead of committing, because its client was already answered 503 and may retry (a rotation that
 * committed behind a 503 would make the retry look like token theft).
 */
function boundToDeadline(sql: Sql, request: FastifyRequest): Sql {
  const begin = (...args: unknown[]) => {
    const work = args.pop() as (tx: TransactionSql) => Promise<unknown>
    return (sql.begin as (...a: unknown[]) => Promise<unknown>)(...args, async (tx: TransactionSql) => {
      const result = await work(tx)
      if (deadlinePassed(request)) throw request.signal.reason
      return result
    })
  }
  return new Proxy(sql, {
    get: (target, property, receiver) =>
      property === 'begin' ? begin : Reflect.get(target, property, receiver),
  })
}

async function serviceContextPlugin(app: FastifyInstance) {
  const { config } = app
  const cursors = createCursorCodec(config.JWT_SECRET)
  const limiter = createLoginThrottle(app.counters, config)
  const devices = createDeviceCookieCodec(config.JWT_SECRET, config.DEVICE_COOKIE_MAX_AGE_SECONDS)
  const sign: ServiceContext['sign'] = (claims) => app.jwt.sign(claims)
  // Built at boot, so the first unknown-user login is not slower than the rest (ASVS 6.3.8).
  await prepareDummyHash(config.BCRYPT_COST)
  // Read at boot (≈ 0.7 s, once per process): the first registration must not block the event loop for it.
  const started = performance.now()
  const entries = blocklist().size
  app.log.debug(
    { event: 'passwords.blocklist_loaded', entries, ms: Math.round(performance.now() - started) },
    'password blocklist loaded',
  )

  app.decorate('serviceContext', function serviceContext(request: FastifyRequest): ServiceContext {
    const userAgent = request.headers['user-agent']?.slice(0, MAX_USER_AGENT) ?? null
    let audit: ServiceContext['audit'] | undefined
    let throttle: ServiceContext['throttle'] | undefined
    // audit and throttle are built when a service first asks: most requests (reads) never do.
    return {
      sql: boundToDeadline(app.sql, request),
      config,
      cipher: app.cipher,
      cursors,
      sign,
      get audit() {
        audit ??= createAudit(
          app.sql,
          app.cipher,
          request.log,
          { ip: request.ip, userAgent, requestId: request.id },
          app.metrics?.securityEvent,
        )
        return audit
      },
      origin: { ip: request.ip, userAgent },
      get throttle() {
        throttle ??= {
          limiter: app.metrics ? countedThrottle(limiter, app.metrics, request.routeOptions.url) : limiter,
          client: clientKey(request.ip),
          deviceCookies: request.deviceCookies(),
          devices,
        }
        return throttle
      },
      devices,
      counters: app.counters,
    }
  })
}

export default fp(serviceContextPlugin, {
  name: 'service-context',
  dependencies: ['config', 'db', 'redis', 'db-deadline', 'auth-cookies', '@fastify/jwt', 'metrics'],
})
