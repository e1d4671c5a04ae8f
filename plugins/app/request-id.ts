import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { trustedProxies } from '../../lib/client-key.js'

/** Request ids: chosen when a request arrives (server-options.ts genReqId) and echoed on every reply. */

/** A gateway's request id is kept only when it is short and made of safe characters. */
export const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

/**
 * The request id the audit trail and the logs carry: the gateway's `x-request-id` when the peer is
 * a gateway in TRUST_PROXY (the same trust test Fastify applies to X-Forwarded-For), else a new
 * UUID. A client cannot give its forged events the id of someone else's request (ASVS 5.0 16.2.1).
 */
export function createRequestIdGenerator(trustProxy: readonly string[]) {
  const trusted = trustedProxies(trustProxy)
  return function requestIdFor(req: IncomingMessage): string {
    const given = req.headers['x-request-id']
    const fromGateway = trusted(req.socket?.remoteAddress ?? '', 0)
    return fromGateway && typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
  }
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
