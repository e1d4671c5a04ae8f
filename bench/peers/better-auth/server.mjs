// Fastify with better-auth, set up as its docs show: email and password on PostgreSQL through a
// `pg` Pool, the catch-all /api/auth/* route converting to a Fetch Request, and the cookie cache
// off (its default), so every GET /api/auth/get-session reads the session from the database.
// At start: migrates its schema (getMigrations/runMigrations) into BETTER_AUTH_DATABASE_URL, makes
// the bench user if missing, signs in once and announces { url, cookie }.
import { betterAuth } from 'better-auth'
import { getMigrations } from 'better-auth/db/migration'
import { fromNodeHeaders } from 'better-auth/node'
import Fastify from 'fastify'
import pg from 'pg'

const databaseUrl = process.env.BETTER_AUTH_DATABASE_URL
if (!databaseUrl) throw new Error('BETTER_AUTH_DATABASE_URL is required')
const email = 'bench@example.com'
const password = 'Bench-Lantern-Orbit-7'

const fastify = Fastify({ logger: false })
/** Made once the port is known (better-auth needs its base URL); the route below is added before listening. */
let auth

fastify.route({
  method: ['GET', 'POST'],
  url: '/api/auth/*',
  async handler(request, reply) {
    const url = new URL(request.url, `http://${request.headers.host}`)
    const req = new Request(url.toString(), {
      method: request.method,
      headers: fromNodeHeaders(request.headers),
      ...(request.body ? { body: JSON.stringify(request.body) } : {}),
    })
    const response = await auth.handler(req)
    reply.status(response.status)
    response.headers.forEach((value, key) => {
      reply.header(key, value)
    })
    return reply.send(response.body ? await response.text() : null)
  },
})

await fastify.listen({ host: '127.0.0.1', port: 0 })
const baseURL = `http://127.0.0.1:${fastify.server.address().port}`

auth = betterAuth({
  baseURL,
  secret: process.env.BETTER_AUTH_SECRET,
  database: new pg.Pool({ connectionString: databaseUrl, max: 10 }),
  emailAndPassword: { enabled: true },
  session: { cookieCache: { enabled: false } },
  // On, as in production; raised for the load test like the service's (a shared bucket: no client IP header).
  rateLimit: { enabled: true, window: 60, max: 10_000_000 },
  logger: { level: 'error' },
})

const { runMigrations } = await getMigrations(auth.options)
await runMigrations()

try {
  await auth.api.signUpEmail({ body: { email, password, name: 'bench' } })
} catch (error) {
  // Made by an earlier run: the account is there.
  if (!/exist/i.test(String(error?.body?.code ?? error?.message))) throw error
}
const signedIn = await auth.api.signInEmail({ body: { email, password }, returnHeaders: true })
const cookie = signedIn.headers
  .getSetCookie()
  .map((c) => c.split(';')[0])
  .join('; ')
console.log(JSON.stringify({ url: baseURL, cookie }))
process.on('SIGTERM', () => fastify.close().then(() => process.exit(0)))
