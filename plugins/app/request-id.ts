import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

/** Request ids: chosen when a request arrives (server-options.ts genReqId) and echoed on every reply. */

/** A gateway's request id is kept only when it is short and made of safe characters. */
const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

export function requestIdFor(req: IncomingMessage): string {
  const given = req.headers['x-request-id']
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
}

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
