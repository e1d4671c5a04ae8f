import swagger, { type FastifyDynamicSwaggerOptions } from '@fastify/swagger'
import type { FastifyInstance } from 'fastify'
import { authCookieNames } from '../app/auth-cookies.js'

/** OpenAPI 3.1 built from the route schemas; served by plugins/app/docs.ts, committed as openapi.json. */
export const autoConfig = (app: FastifyInstance): FastifyDynamicSwaggerOptions => {
  const cookies = authCookieNames(app.config.COOKIE_SECURE)
  return {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Bulwark API',
        version: '0.1.0',
        description:
          'Errors are application/problem+json (RFC 9457). Send the access token from `login` as ' +
          '`Authorization: Bearer <token>`; browsers may use the cookies instead (unsafe methods then need ' +
          'an allowed Origin).',
      },
      // Relative: the document describes whichever host serves it (RFC 3986 §5.2 against /docs/json).
      servers: [{ url: '/', description: 'The server this document came from' }],
      tags: [
        { name: 'auth', description: 'Accounts, sign-in, tokens and sessions' },
        { name: 'mfa', description: 'Two-factor authentication: TOTP authenticators and recovery codes' },
        {
          name: 'passkeys',
          description: 'Passkeys (WebAuthn): register them, sign in with them, manage them',
        },
        { name: 'users', description: 'Your account and the profiles of other users' },
        { name: 'comments', description: 'Comments: anyone reads, signed-in users write their own' },
        { name: 'admin', description: 'User management and the audit log (admins only)' },
        { name: 'api-keys', description: 'Scoped API keys for machine clients: create, list, revoke' },
        { name: 'health', description: 'Liveness and readiness probes for orchestrators and gateways' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          refreshCookie: { type: 'apiKey', in: 'cookie', name: cookies.refresh },
          cookieAuth: { type: 'apiKey', in: 'cookie', name: cookies.access },
          // Scoped API keys for machine clients (POST /api/auth/api-keys); a route lists the scope it needs.
          apiKey: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'bwk_<id>_<secret>',
            description:
              'An API key as `Authorization: Bearer bwk_<id>_<secret>`. A route accepts a key only when it ' +
              'lists this scheme, and only with the scope it names (else 403 `insufficient-scope`); every ' +
              'other route refuses keys (403 `api-key-not-allowed`).',
          },
        },
      },
    },
    // A shared schema is listed in components.schemas under its $id (Comment, Problem), not `def-N`.
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json.$id === 'string' ? json.$id : `def-${i}`,
    },
  }
}

export default swagger
