import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { SHARED_SCHEMAS } from '../../schemas/shared.js'

/** The shared schemas (schemas/shared.ts), registered once for every route to reference. */

/**
 * Added at the root before any route: response serializers resolve the routes' `$ref`s against
 * them, and @fastify/swagger lists each once in components.schemas instead of inlining a copy.
 */
async function sharedSchemasPlugin(app: FastifyInstance) {
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema)
}

export default fp(sharedSchemasPlugin, { name: 'shared-schemas' })
