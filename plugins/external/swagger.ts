import swagger, { type FastifyDynamicSwaggerOptions } from '@fastify/swagger'
import type { FastifyInstance } from 'fastify'
import { authCookieNames } from '../app/auth-cookies.js'

/** OpenAPI 3.1 built from the route schemas; served by plugins/app/docs.ts. */
export const autoConfig = (app: FastifyInstance): FastifyDynamicSwaggerOptions => {
  const cookies = authCookieNames(app.config.COOKIE_SECURE)
  return {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Bulwark API',
        version: '0.1.0',
        description: 'Errors are application/problem+json (RFC 9457).',
      },
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          refreshCookie: { type: 'apiKey', in: 'cookie', name: cookies.refresh },
          cookieAuth: { type: 'apiKey', in: 'cookie', name: cookies.access },
        },
      },
    },
  }
}

export default swagger
