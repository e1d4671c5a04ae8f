import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import fp from 'fastify-plugin'
import { securityHeaders } from '../lib/security-headers.js'

/**
 * Helmet's headers on every answer, errors and 404s included, set as the first thing a request
 * meets. @fastify/helmet rebuilt helmet's middleware from its options on every request (measured
 * at 3-4 % of the CPU of `/health/live`); the values are static, so they are computed once here.
 */
async function securityHeadersPlugin(app: FastifyInstance) {
  const headers = Object.entries(securityHeaders(app.config))
  app.addHook(
    'onRequest',
    function setSecurityHeaders(
      _request: FastifyRequest,
      reply: FastifyReply,
      done: HookHandlerDoneFunction,
    ) {
      for (const [name, value] of headers) reply.header(name, value)
      done()
    },
  )
}

export default fp(securityHeadersPlugin, { name: 'security-headers', dependencies: ['config'] })
