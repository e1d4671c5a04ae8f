import type { FastifyInstance } from 'fastify'

/** Every route in this folder needs an access token and the admin role, read fresh from the database. */
export default async function adminOnly(app: FastifyInstance) {
  app.addHook('onRequest', app.authenticate)
  app.addHook('onRequest', app.authorize('admin'))
}
