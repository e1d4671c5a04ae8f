import helmet, { type FastifyHelmetOptions } from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'

/**
 * A JSON API's header profile (OWASP Secure Headers / REST Security cheat sheets): nothing may be
 * framed, loaded or sniffed; no referrer leaves; HSTS wherever cookies are secure (HTTPS). Headers
 * a browser needs only for HTML documents are left out. Swagger UI sets its own relaxed policy on
 * /docs (plugins/app/docs.ts).
 */
export const autoConfig = (app: FastifyInstance): FastifyHelmetOptions => ({
  global: true,
  contentSecurityPolicy: {
    useDefaults: false,
    directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
  },
  strictTransportSecurity: app.config.COOKIE_SECURE
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
})

export default helmet
