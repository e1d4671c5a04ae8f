import type { IncomingMessage, ServerResponse } from 'node:http'
import helmet, { type HelmetOptions } from 'helmet'
import type { Config } from '../schemas/env.js'

/** The security headers of every answer: helmet's values for our profile, computed once. */

/**
 * An API profile: no content may load or frame (CSP default-src 'none', frame-ancestors 'none'),
 * no referrer, no MIME sniffing, same-origin resources only, HSTS when cookies are secure (HTTPS).
 * OWASP ASVS 5.0 3.4.1-3.4.6; the Swagger UI routes set their own CSP (plugins/app/docs.ts).
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
  }) satisfies HelmetOptions

/**
 * Runs helmet once on a stand-in response and keeps what it set. Our values are static, so every
 * answer can carry the same object; helmet stays the authority on what each option writes.
 */
export function securityHeaders(config: Pick<Config, 'COOKIE_SECURE'>): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {}
  const response = {
    setHeader: (name: string, value: unknown) => {
      headers[name.toLowerCase()] = String(value)
    },
    removeHeader: (name: string) => {
      delete headers[name.toLowerCase()]
    },
  }
  helmet(helmetProfile(config))({} as IncomingMessage, response as unknown as ServerResponse, () => {})
  return Object.freeze(headers)
}
