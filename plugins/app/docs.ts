import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** The OpenAPI document at /docs/json, and Swagger UI at /docs when enabled. */

/**
 * GET /docs/json always serves the OpenAPI document (the API's contract, for gateways and client
 * generators). Swagger UI at /docs only when DOCS_ENABLED (default: off in production).
 */
async function docsPlugin(app: FastifyInstance) {
  if (app.config.DOCS_ENABLED) {
    await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true })
    return
  }
  app.get('/docs/json', { schema: { hide: true } }, async function openapi() {
    return app.swagger()
  })
}

export default fp(docsPlugin, { name: 'docs', dependencies: ['config', '@fastify/swagger'] })
