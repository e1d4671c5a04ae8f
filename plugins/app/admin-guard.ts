import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

/** The admin API answers 401/403 to every spelling of its paths, also those that match no route. */

/** The path as a lenient router or proxy might read it: decoded, lower-case, single slashes, no trailing slash. */
export function normalizedPath(url: string): string {
  // An absolute-form target (RFC 9112 §3.2.2, `GET http://host/api/admin/x`) is routed by its path.
  const path = (url.split('?')[0] ?? '').replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, '')
  let decoded = path
  try {
    decoded = decodeURIComponent(path)
  } catch {
    // a malformed escape stays as sent
  }
  return decoded
    .toLowerCase()
    .replace(/\/+/g, '/')
    .replace(/(.)\/$/, '$1')
}

const ADMIN = /^\/api\/admin(\/|$)/

/**
 * routes/api/admin/autohooks.ts guards the routes that match. A request that only looks like an
 * admin path (other case, double or trailing slash, escapes) matches no route, and 404 handling
 * skips route hooks; answer it as the admin API would, 401 or 403, so spelling reveals nothing.
 */
async function adminGuardPlugin(app: FastifyInstance) {
  const requireAdmin = app.authorize('admin')
  app.addHook('onRequest', async function adminSpellings(request: FastifyRequest) {
    // '*' is @fastify/cors's catch-all OPTIONS route: a preflight from an allowed origin was answered
    // by the cors hook before this one; any other OPTIONS is one more method on the admin API.
    const route = request.routeOptions.url
    if ((route !== undefined && route !== '*') || !ADMIN.test(normalizedPath(request.url))) return
    await app.authenticate(request)
    await requireAdmin(request)
  })
}

export default fp(adminGuardPlugin, {
  name: 'admin-guard', // global-rate-limit only orders the hooks: its hook must run (and count) before this one.
  dependencies: ['authentication', 'global-rate-limit'],
})
