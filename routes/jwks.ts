import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'

const Jwks = Type.Object(
  { keys: Type.Array(Type.Record(Type.String(), Type.String())) },
  { description: 'A JSON Web Key Set (RFC 7517 §5)' },
)

/** Public keys (current and previous) so a gateway can verify access tokens itself (RFC 7517). */
const jwks: FastifyPluginAsyncTypebox = async (app) => {
  const document = { keys: [...app.jwtKeys.publicKeys.values()].map((k) => k.jwk as Record<string, string>) }
  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        tags: ['auth'],
        operationId: 'getJwks',
        summary: 'Public keys for verifying access tokens (RFC 7517)',
        security: [],
        response: { 200: Jwks },
      },
    },
    async function publishKeys(_request, reply) {
      reply.header('cache-control', 'public, max-age=300')
      return document
    },
  )
}

export default jwks
