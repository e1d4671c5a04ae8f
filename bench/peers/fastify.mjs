// Baseline: bare Fastify (the service's own copy, so the same version) answering a small JSON body.
import Fastify from 'fastify'

const app = Fastify({ logger: false })
app.get('/', async () => ({ status: 'ok' }))
const url = await app.listen({ host: '127.0.0.1', port: 0 })
console.log(JSON.stringify({ url }))
process.on('SIGTERM', () => app.close().then(() => process.exit(0)))
