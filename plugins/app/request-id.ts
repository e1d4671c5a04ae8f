import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

/** Echo the request id (the gateway's when well-formed, else ours) so clients can quote it. */
function echoRequestId(request: FastifyRequest, reply: FastifyReply, done: () => void) {
  reply.header('x-request-id', request.id)
  done()
}

async function requestIdPlugin(app: FastifyInstance) {
  app.addHook('onRequest', echoRequestId)
}

export default fp(requestIdPlugin, { name: 'request-id' })
