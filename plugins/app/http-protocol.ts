import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { AppError } from '../../lib/errors.js'

/**
 * HTTP/1.1 rules Node leaves to us, answered like every other error (problem+json, with the security
 * headers): exactly one Host (RFC 9112 §3.2), and no Expect but 100-continue (RFC 9110 §10.1.1).
 */

/** How many Host fields a request carries (Node keeps the first of several; the raw list shows all). */
function hostCount(request: FastifyRequest): number {
  const raw = request.raw.rawHeaders
  let hosts = 0
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i]?.length === 4 && raw[i]?.toLowerCase() === 'host') hosts++
  return hosts
}

async function httpProtocolPlugin(app: FastifyInstance) {
  // Node answers an unknown Expect with a bare 417 of its own: route it through Fastify instead.
  app.server.on('checkExpectation', (req, res) => app.routing(req, res))

  app.addHook('onRequest', async function httpRules(request) {
    const hosts = hostCount(request)
    // Two Host fields let a gateway and the service disagree about the target (request smuggling).
    if (hosts > 1 || (hosts === 0 && request.raw.httpVersion === '1.1')) {
      throw new AppError(400, 'An HTTP/1.1 request must carry exactly one Host header.')
    }
    const expect = request.headers.expect
    if (expect !== undefined && expect.toLowerCase() !== '100-continue') {
      throw new AppError(417, 'The only expectation this server meets is 100-continue.')
    }
  })
}

export default fp(httpProtocolPlugin, {
  name: 'http-protocol',
  // global-rate-limit only orders the hooks: a refused request still counts against the limit.
  dependencies: ['errors', 'global-rate-limit'],
})
