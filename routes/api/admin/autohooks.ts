import type { FastifyInstance } from 'fastify'

/** Every route in this folder needs an access token (or admin API key) and the admin role, read fresh from the database. */
export default async function adminOnly(app: FastifyInstance) {
  // An API key reaches these routes only with the admin scope; authorize('admin') then reads its
  // owner's role fresh, and the MFA rule against the amr of the session that created the key.
  app.addHook('onRoute', function adminKeyScope(route) {
    route.config = { ...route.config, apiKeyScope: 'admin' }
  })
  app.addHook('onRequest', app.authenticate)
  app.addHook('onRequest', app.authorize('admin'))
}
