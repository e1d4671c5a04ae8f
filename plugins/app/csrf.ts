import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { forbidden } from '../../lib/errors.js'

/** CSRF defence for cookie-borne unsafe requests: Origin and Fetch Metadata checks. */

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/**
 * Cookie-borne unsafe requests must come from our own origin or an allowed one (OWASP CSRF
 * cheat sheet: Fetch Metadata and Origin verification; ASVS 3.5.2). SameSite=Strict cookies and
 * JSON-only bodies are the other two layers. A request with an Authorization header is not
 * cookie-borne: a browser cannot add that header cross-site without CORS allowing it.
 */
async function csrfPlugin(app: FastifyInstance) {
  const allowed = new Set(app.config.CORS_ORIGINS)
  if (app.config.PUBLIC_ORIGIN) allowed.add(app.config.PUBLIC_ORIGIN)
  const cookieNames = Object.values(app.authCookies)

  function ownOrigin(request: FastifyRequest): string {
    return `${request.protocol}://${request.host}`
  }

  app.addHook('onRequest', async function csrfGuard(request) {
    if (!UNSAFE.has(request.method) || request.headers.authorization !== undefined) return
    if (!cookieNames.some((name) => request.cookies[name] !== undefined)) return
    const site = request.headers['sec-fetch-site']
    const origin = request.headers.origin
    const foreignOrigin = origin !== undefined && origin !== ownOrigin(request) && !allowed.has(origin)
    if (site === 'cross-site' || foreignOrigin) {
      request.log.warn(
        { event: 'csrf.rejected', origin: origin?.slice(0, 200), site },
        'cross-site request refused',
      )
      throw forbidden('Cross-site requests are not allowed.', 'csrf-rejected')
    }
  })
}

export default fp(csrfPlugin, {
  name: 'csrf',
  // global-rate-limit only orders the hooks: a refused cross-site request is still counted.
  dependencies: ['config', 'auth-cookies', 'global-rate-limit', '@fastify/cookie'],
})
