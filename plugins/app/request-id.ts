import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

/**
 * Echo the request id (the gateway's when well-formed, else ours) so clients can quote it. onSend
 * runs for every reply, errors and replies from early hooks (CSRF, CORS preflight) included.
 */
async function echoRequestId(request: FastifyRequest, reply: FastifyReply) {
  reply.header('x-request-id', request.id)
}

async function requestIdPlugin(app: FastifyInstance) {
  app.addHook('onSend', echoRequestId)
}

export default fp(requestIdPlugin, { name: 'request-id' })
