import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

/**
 * Answers that depend on who is asking are never stored by a browser or a shared cache (OWASP ASVS
 * 5.0 14.3.2, RFC 9111 §5.2.2.5): any request that carries credentials (a Bearer token or one of
 * the auth cookies) or was authenticated, and everything under /api/auth, gets `no-store` unless
 * the route chose its own policy. Anonymous public answers (the comment list, the JWKS) stay cacheable.
 */
async function cacheControlPlugin(app: FastifyInstance) {
  const credentialCookies = Object.values(app.authCookies)
  const carriesCredentials = (request: FastifyRequest) =>
    request.principal !== null ||
    request.headers.authorization !== undefined ||
    credentialCookies.some((name) => request.cookies[name] !== undefined) ||
    request.url.startsWith('/api/auth/')

  app.addHook('onSend', async function personalNoStore(request: FastifyRequest, reply: FastifyReply) {
    if (reply.hasHeader('cache-control') || !carriesCredentials(request)) return
    reply.header('cache-control', 'no-store')
  })
}

export default fp(cacheControlPlugin, {
  name: 'cache-control',
  dependencies: ['auth-cookies', 'authentication', '@fastify/cookie'],
})
