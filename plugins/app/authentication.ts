import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { apiKeyNotAllowed, forbidden, unauthenticated } from '../../lib/errors.js'
import { findPrincipal, type Principal, type SessionPrincipal } from '../../repositories/sessions.js'
import type { Role, VerifiedClaims } from '../../schemas/auth.js'
import { API_KEY_PREFIX } from '../../services/api-keys.js'
import { assertRecentAuthentication } from '../../services/step-up.js'

/** Authentication: who sends a request (access token → live session → principal), and role checks. */

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook: a valid access token of a live session, or 401. */
    authenticate: (request: FastifyRequest) => Promise<void>
    /**
     * onRequest hook after authenticate: the principal holds at least `role`, or 403; and when their
     * role (or one below it) is in MFA_REQUIRED_ROLES, their session used a second factor, or 403 mfa-required.
     */
    authorize: (role: Role) => (request: FastifyRequest) => Promise<void>
    /** onRequest hook after authenticate: the session authenticated within REAUTH_MAX_AGE_SECONDS, or 401. */
    requireRecentAuth: (request: FastifyRequest) => Promise<void>
    /** The principal when a valid access token of a live session comes with the request, else null. */
    optionalPrincipal: (request: FastifyRequest) => Promise<SessionPrincipal | null>
    /** The user id of a valid access token, without touching the database (rate-limit keys); else null. */
    peekUserId: (request: FastifyRequest) => string | null
  }
  interface FastifyRequest {
    principal: Principal | null
    /** The authenticated principal; throws 401 if the route forgot app.authenticate. */
    requirePrincipal: () => Principal
    /** The authenticated session's principal; 403 api-key-not-allowed for an API key, 401 without one. */
    requireSession: () => SessionPrincipal
  }
}

/** Clock difference tolerated between token issuers (replicas) for `iat`. */
const CLOCK_SKEW_SECONDS = 60

/** An admin may do whatever a user may. */
const ROLE_RANK: Record<Role, number> = { user: 1, admin: 2 }

/** The scheme name is case-insensitive (RFC 9110 §11.1); the token is RFC 6750 §2.1's b64token. */
const BEARER = /^Bearer ([A-Za-z0-9_.~+/-]+=*)$/i

async function authenticationPlugin(app: FastifyInstance) {
  const keys = app.jwtKeys
  app.decorateRequest('principal', null)
  app.decorateRequest('requirePrincipal', function requirePrincipal(this: FastifyRequest) {
    if (!this.principal) throw unauthenticated(false)
    return this.principal
  })
  app.decorateRequest('requireSession', function requireSession(this: FastifyRequest) {
    const principal = this.requirePrincipal()
    if (principal.via !== 'session') throw apiKeyNotAllowed()
    return principal
  })

  const ttl = app.config.ACCESS_TOKEN_TTL_SECONDS
  /** Verifies with the key its kid names: current, or the previous one during a key rotation. */
  function verifyAccessToken(token: string): VerifiedClaims {
    let claims: VerifiedClaims | undefined
    if (keys.publicKeys.size > 1) {
      const kid = (app.jwt.decode(token) as { header?: { kid?: string } } | null)?.header?.kid
      const previous = kid && kid !== keys.kid ? keys.publicKeys.get(kid) : undefined
      if (previous) claims = app.jwt.verify<VerifiedClaims>(token, { key: previous.pem })
    }
    claims ??= app.jwt.verify<VerifiedClaims>(token)
    // RFC 9068 §4, RFC 8725 §3.10: not issued in the future, and not minted to live longer than we issue.
    const now = Date.now() / 1000
    if (!(claims.iat <= now + CLOCK_SKEW_SECONDS) || !(claims.exp - claims.iat <= ttl)) {
      throw new Error('access token issued in the future or with a longer lifetime than ours')
    }
    return claims
  }

  /**
   * The claims of the request's access token, or null when it has a bad one. Verified once per
   * request: the global rate limit (peekUserId) and authenticate both ask.
   */
  const verified = new WeakMap<FastifyRequest, VerifiedClaims | null>()
  function claimsOf(request: FastifyRequest, token: string): VerifiedClaims | null {
    if (verified.has(request)) return verified.get(request) ?? null
    let claims: VerifiedClaims | null = null
    try {
      claims = verifyAccessToken(token)
    } catch {
      claims = null
    }
    verified.set(request, claims)
    return claims
  }

  /**
   * Bearer header first, else the access cookie; never the query string (RFC 6750 §2.3, ASVS 7.2).
   * `null` is a malformed Authorization header; `undefined` is no token at all.
   */
  function tokenOf(request: FastifyRequest): string | null | undefined {
    const header = request.headers.authorization
    if (header === undefined) return request.accessCookie()
    const token = BEARER.exec(header)?.[1] ?? null
    // An API key (plugins/app/api-keys.ts checks it before any route hook) is never read as a JWT.
    return token?.startsWith(API_KEY_PREFIX) ? null : token
  }

  /** The live principal behind a token, or null when the token or its session is not good. */
  async function principalOf(request: FastifyRequest, token: string): Promise<SessionPrincipal | null> {
    const claims = claimsOf(request, token)
    if (!claims) return null
    // Revoked sessions, disabled users and role changes take effect at once (ASVS 7.4.1, 8.3.1).
    return (await findPrincipal(app.sql, claims.sid, claims.sub)) ?? null
  }

  app.decorate('peekUserId', function peekUserId(request: FastifyRequest): string | null {
    const token = tokenOf(request)
    return token ? (claimsOf(request, token)?.sub ?? null) : null
  })

  app.decorate('authenticate', async function authenticate(request: FastifyRequest) {
    // Set by the api-keys gate when the route declares the scope the key holds (deny by default).
    if (request.principal?.via === 'api-key') return
    const token = tokenOf(request)
    if (token === undefined) throw unauthenticated(false)
    const principal = token === null ? null : await principalOf(request, token)
    if (!principal) throw unauthenticated(true)
    request.principal = principal
  })

  app.decorate('optionalPrincipal', async function optionalPrincipal(request: FastifyRequest) {
    const token = tokenOf(request)
    const principal = token ? await principalOf(request, token) : null
    request.principal = principal
    return principal
  })

  // A listed role needs a second factor, and so does every role above it (an admin may do what a user may).
  const listed = app.config.MFA_REQUIRED_ROLES as Role[]
  const needsMfa = (role: Role) => listed.some((r) => ROLE_RANK[r] <= ROLE_RANK[role])
  const mfaRequired: Record<Role, boolean> = { user: needsMfa('user'), admin: needsMfa('admin') }
  app.decorate('authorize', function authorize(role: Role) {
    return async function requireRole(request: FastifyRequest) {
      const principal = request.principal
      if (!principal || ROLE_RANK[principal.role] < ROLE_RANK[role]) throw forbidden()
      // OWASP ASVS 5.0 6.3.3: a principal of these roles acts only from a session that used a second
      // factor, whatever role the route needs (an admin's powers also live on user-level routes).
      if (mfaRequired[principal.role] && !principal.amr.includes('mfa')) {
        throw forbidden(
          'Your role needs two-factor authentication: enrol an authenticator at POST /api/auth/mfa/totp (this session then counts), or sign in with it.',
          'mfa-required',
        )
      }
    }
  })

  const maxAge = app.config.REAUTH_MAX_AGE_SECONDS
  app.decorate('requireRecentAuth', async function requireRecentAuth(request: FastifyRequest) {
    // An API key never counts as a recent authentication (ASVS 5.0 7.5.3): it is refused here.
    assertRecentAuthentication(request.requireSession(), maxAge)
  })
}

export default fp(authenticationPlugin, {
  name: 'authentication',
  dependencies: ['config', 'db', 'auth-cookies', '@fastify/jwt'],
})
