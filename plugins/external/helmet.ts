import helmet, { type FastifyHelmetOptions } from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../../schemas/env.js'

/**
 * A JSON API's header profile (OWASP Secure Headers / REST Security cheat sheets): nothing may be
 * framed, loaded or sniffed; no referrer leaves; HSTS wherever cookies are secure (HTTPS). Headers
 * a browser needs only for HTML documents are left out. Swagger UI sets its own relaxed policy on
 * /docs (plugins/app/docs.ts). Answers written before any hook runs take the same headers
 * (server-options.ts).
 */
export const helmetProfile = (config: Pick<Config, 'COOKIE_SECURE'>) =>
  ({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
    },
    strictTransportSecurity: config.COOKIE_SECURE
      ? { maxAge: 31_536_000, includeSubDomains: true, preload: false }
      : false,
    crossOriginResourcePolicy: { policy: 'same-origin' },
    crossOriginOpenerPolicy: false,
    crossOriginEmbedderPolicy: false,
    originAgentCluster: false,
    referrerPolicy: { policy: 'no-referrer' },
    xContentTypeOptions: true,
    xDnsPrefetchControl: false,
    xDownloadOptions: false,
    xFrameOptions: { action: 'deny' },
    xPermittedCrossDomainPolicies: false,
    xPoweredBy: true,
    xXssProtection: false,
  }) satisfies FastifyHelmetOptions

export const autoConfig = (app: FastifyInstance): FastifyHelmetOptions => ({
  global: true,
  ...helmetProfile(app.config),
})

export default helmet
