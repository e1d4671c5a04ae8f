import cors, { type FastifyCorsOptions } from '@fastify/cors'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * Exact-origin allowlist with credentials (OWASP ASVS 3.4): an allowed origin is echoed with
 * Access-Control-Allow-Credentials; any other (null, look-alikes, other scheme or port) gets no
 * Access-Control-Allow-* header at all. A wildcard is refused at boot (plugins/app/config.ts).
 */
export const autoConfig = (app: FastifyInstance): FastifyCorsOptions => {
  const allowed = new Set(app.config.CORS_ORIGINS)
  return {
    hook: 'onRequest',
    origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
    credentials: true,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: ['authorization', 'content-type', 'x-request-id'],
    exposedHeaders: [
      'x-request-id',
      'ratelimit-limit',
      'ratelimit-remaining',
      'ratelimit-reset',
      'retry-after',
    ],
    maxAge: 600,
    // A malformed preflight (no Access-Control-Request-Method) gets the normal answer, not a text/plain 400.
    strictPreflight: false,
    optionsSuccessStatus: 204,
  }
}

/**
 * cors answers a preflight in its own onRequest hook, before plugins/app/global-rate-limit.ts's
 * runs: the global limit runs first here (looked up per request: the limiter loads later), or an
 * OPTIONS with an allowed Origin would be an unlimited request (OWASP ASVS 5.0 2.4.1).
 */
export default fp(
  async function corsAfterGlobalLimit(app: FastifyInstance, options: FastifyCorsOptions) {
    app.addHook('onRequest', (request, reply) => app.globalRateLimit(request, reply))
    await app.register(cors, options)
  },
  // The limit's key reads the access cookie: cookies are parsed by then.
  { name: 'cors', dependencies: ['@fastify/cookie'] },
)
