import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { findPrincipal, type Principal } from '../../repositories/sessions.js'
import type { AccessClaims, Role } from '../../schemas/auth.js'
import { createAudit } from '../../services/audit.js'
import { clientKey } from '../../services/client-key.js'
import { type CursorCodec, createCursorCodec } from '../../services/cursor.js'
import { AppError } from '../../services/errors.js'
import { type JwtKeys, jwtKeys } from '../../services/jwt-keys.js'
import { createLoginThrottle, type LoginThrottle } from '../../services/login-throttle.js'
import { prepareDummyHash } from '../../services/passwords.js'
import type { SessionsContext } from '../../services/sessions.js'

declare module 'fastify' {
  interface FastifyInstance {
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    authorize: (role: Role) => (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    /** What services need for this request: db, config, signer, cursors, audit bound to the request, origin. */
    serviceContext: (request: FastifyRequest) => SessionsContext & { cursors: CursorCodec }
    cursors: CursorCodec
    loginThrottle: LoginThrottle
    authCookies: { access: string; refresh: string }
    jwtKeys: JwtKeys
    /** The user id of a valid access token, without touching the database (rate-limit keys); else null. */
    peekUserId: (request: FastifyRequest) => string | null
  }
  interface FastifyRequest {
    principal: Principal | null
    /** The authenticated principal; throws 401 if the route forgot app.authenticate. */
    requirePrincipal: () => Principal
    /** The refresh cookie, or undefined when absent or sent more than once (cookie tossing). */
    refreshCookie: () => string | undefined
  }
  interface FastifyReply {
    setAuthCookies: (tokens: {
      accessToken: string
      refreshToken?: string | undefined
      refreshExpiresIn?: number | undefined
    }) => FastifyReply
    clearAuthCookies: () => FastifyReply
  }
}

const MAX_USER_AGENT = 512
/** An admin may do whatever a user may. */
const ROLE_RANK: Record<Role, number> = { user: 1, admin: 2 }

/** RFC 6750 §3: say that a Bearer token is needed, and whether the one sent was bad. */
function unauthorized(tokenSent: boolean): AppError {
  return new AppError(
    401,
    tokenSent ? 'The access token is invalid or expired.' : 'Authentication is required.',
    {
      type: tokenSent ? 'invalid-token' : 'unauthenticated',
      headers: { 'www-authenticate': tokenSent ? 'Bearer error="invalid_token"' : 'Bearer' },
    },
  )
}

async function authPlugin(app: FastifyInstance) {
  const { config } = app
  const keys = jwtKeys(config)
  // __Host- binds the access cookie to this exact host over https; __Secure- marks the refresh cookie.
  const names = config.COOKIE_SECURE
    ? { access: '__Host-access_token', refresh: '__Secure-refresh_token' }
    : { access: 'access_token', refresh: 'refresh_token' }
  const base = { httpOnly: true, secure: config.COOKIE_SECURE, sameSite: 'strict' as const }
  const accessCookie = { ...base, path: '/', maxAge: config.ACCESS_TOKEN_TTL_SECONDS }
  const refreshCookie = { ...base, path: '/api/auth', maxAge: config.REFRESH_TOKEN_TTL_SECONDS }
  app.decorate('authCookies', names)
  app.decorate('jwtKeys', keys)
  const cursors = createCursorCodec(config.JWT_SECRET)
  app.decorate('cursors', cursors)
  app.decorate('loginThrottle', createLoginThrottle(app.counters, config))
  await prepareDummyHash(config.BCRYPT_COST)
  app.decorateRequest('principal', null)
  // A sibling subdomain can plant a second cookie of the same name ("cookie tossing"); with two,
  // we cannot tell ours, so we take neither (OWASP Session Management cheat sheet).
  const refreshName = new RegExp(`(?:^|;)\\s*${names.refresh.replace(/[-_]/g, '\\$&')}=`, 'g')
  app.decorateRequest('refreshCookie', function refreshCookie(this: FastifyRequest) {
    const header = this.headers.cookie ?? ''
    if ((header.match(refreshName) ?? []).length > 1) return undefined
    return this.cookies[names.refresh]
  })
  app.decorateRequest('requirePrincipal', function requirePrincipal(this: FastifyRequest) {
    if (!this.principal) throw unauthorized(false)
    return this.principal
  })

  app.decorateReply('setAuthCookies', function setAuthCookies(this: FastifyReply, tokens) {
    this.setCookie(names.access, tokens.accessToken, accessCookie)
    // The cookie lives exactly as long as its token, which never outlives the session (RFC 6265 Max-Age).
    if (tokens.refreshToken) {
      this.setCookie(names.refresh, tokens.refreshToken, {
        ...refreshCookie,
        maxAge: tokens.refreshExpiresIn ?? refreshCookie.maxAge,
      })
    }
    return this.header('cache-control', 'no-store')
  })
  app.decorateReply('clearAuthCookies', function clearAuthCookies(this: FastifyReply) {
    this.clearCookie(names.access, { ...base, path: accessCookie.path })
    this.clearCookie(names.refresh, { ...base, path: refreshCookie.path })
    return this.header('cache-control', 'no-store')
  })

  /**
   * The claims of the request's access token, or null when it has none or a bad one. Verified once
   * per request: the global rate limit (peekUserId) and authenticate both ask.
   */
  const verified = new WeakMap<FastifyRequest, AccessClaims | null>()
  function claimsOf(request: FastifyRequest, token: string): AccessClaims | null {
    if (verified.has(request)) return verified.get(request) ?? null
    let claims: AccessClaims | null = null
    try {
      claims = verifyAccessToken(token)
    } catch {
      claims = null
    }
    verified.set(request, claims)
    return claims
  }

  /** Verifies with the key its kid names: current, or the previous one during a key rotation. */
  function verifyAccessToken(token: string): AccessClaims {
    if (keys.publicKeys.size > 1) {
      const kid = (app.jwt.decode(token) as { header?: { kid?: string } } | null)?.header?.kid
      const previous = kid && kid !== keys.kid ? keys.publicKeys.get(kid) : undefined
      if (previous) return app.jwt.verify<AccessClaims>(token, { key: previous.pem })
    }
    return app.jwt.verify<AccessClaims>(token)
  }

  /**
   * Bearer header first, else the access cookie; never the query string (RFC 6750 §2.3, ASVS 7.2).
   * `null` is a malformed Authorization header; `undefined` is no token at all.
   */
  function tokenOf(request: FastifyRequest): string | null | undefined {
    const header = request.headers.authorization
    if (header === undefined) return request.cookies[names.access] || undefined
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    return /^Bearer ([A-Za-z0-9_.~+/-]+=*)$/i.exec(header)?.[1] ?? null
  }

  app.decorate('peekUserId', function peekUserId(request: FastifyRequest): string | null {
    const token = tokenOf(request)
    return token ? (claimsOf(request, token)?.sub ?? null) : null
  })

  app.decorate('authenticate', async function authenticate(request: FastifyRequest) {
    const token = tokenOf(request)
    if (token === null) throw unauthorized(true)
    if (token === undefined) throw unauthorized(false)
    const claims = claimsOf(request, token)
    if (!claims) throw unauthorized(true)
    // Revoked sessions, disabled users and role changes take effect at once (ASVS 7.4.1, 8.3.1).
    const principal = await findPrincipal(app.sql, claims.sid, claims.sub)
    if (!principal) throw unauthorized(true)
    request.principal = principal
  })

  app.decorate('authorize', function authorize(role: Role) {
    return async function requireRole(request: FastifyRequest) {
      if (!request.principal || ROLE_RANK[request.principal.role] < ROLE_RANK[role]) {
        throw new AppError(403, 'You do not have permission to do this.', { type: 'forbidden' })
      }
    }
  })

  app.decorate('serviceContext', function serviceContext(request: FastifyRequest) {
    const userAgent = request.headers['user-agent']?.slice(0, MAX_USER_AGENT) ?? null
    return {
      sql: app.sql,
      config,
      cursors,
      sign: (claims) => app.jwt.sign(claims),
      audit: createAudit(app.sql, request.log, { ip: request.ip, userAgent, requestId: request.id }),
      origin: { ip: request.ip, userAgent },
      throttle: { limiter: app.loginThrottle, client: clientKey(request.ip) },
    }
  })
}

export default fp(authPlugin, {
  name: 'auth',
  dependencies: ['config', 'db', 'redis', '@fastify/jwt', '@fastify/cookie'],
})
