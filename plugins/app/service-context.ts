import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { clientKey } from '../../lib/client-key.js'
import { createCursorCodec } from '../../lib/cursor.js'
import { createAudit } from '../../services/audit.js'
import type { ServiceContext } from '../../services/context.js'
import { createLoginThrottle } from '../../services/login-throttle.js'
import { prepareDummyHash } from '../../services/passwords.js'

/** The service context: the one way a handler reaches a service, built from the request once per call. */

declare module 'fastify' {
  interface FastifyInstance {
    serviceContext: (request: FastifyRequest) => ServiceContext
  }
}

const MAX_USER_AGENT = 512

async function serviceContextPlugin(app: FastifyInstance) {
  const { config } = app
  const cursors = createCursorCodec(config.JWT_SECRET)
  const limiter = createLoginThrottle(app.counters, config)
  const sign: ServiceContext['sign'] = (claims) => app.jwt.sign(claims)
  // Built at boot, so the first unknown-user login is not slower than the rest (ASVS 6.3.8).
  await prepareDummyHash(config.BCRYPT_COST)

  app.decorate('serviceContext', function serviceContext(request: FastifyRequest): ServiceContext {
    const userAgent = request.headers['user-agent']?.slice(0, MAX_USER_AGENT) ?? null
    return {
      sql: app.sql,
      config,
      cipher: app.cipher,
      cursors,
      sign,
      audit: createAudit(app.sql, app.cipher, request.log, {
        ip: request.ip,
        userAgent,
        requestId: request.id,
      }),
      origin: { ip: request.ip, userAgent },
      throttle: { limiter, client: clientKey(request.ip) },
    }
  })
}

export default fp(serviceContextPlugin, {
  name: 'service-context',
  dependencies: ['config', 'db', 'redis', '@fastify/jwt'],
})
