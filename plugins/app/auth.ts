import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { findPrincipal, type Principal } from '../../repositories/sessions.js'
import type { AccessClaims, Role } from '../../schemas/auth.js'
import { createAudit } from '../../services/audit.js'
import { type CursorCodec, createCursorCodec } from '../../services/cursor.js'
import { AppError } from '../../services/errors.js'
import { type JwtKeys, jwtKeys } from '../../services/jwt-keys.js'
import type { SessionsContext } from '../../services/sessions.js'

declare module 'fastify' {
  interface FastifyInstance {
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    authorize: (role: Role) => (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    /** What services need for this request: db, config, signer, cursors, audit bound to the request, origin. */
    serviceContext: (request: FastifyRequest) => SessionsContext & { cursors: CursorCodec }
    cursors: CursorCodec
    authCookies: { access: string; refresh: string }
    jwtKeys: JwtKeys
  }
  interface FastifyRequest {
    principal: Principal | null
    /** The authenticated principal; throws 401 if the route forgot app.authenticate. */
    requirePrincipal: () => Principal
  }
  interface FastifyReply {
    setAuthCookies: (tokens: { accessToken: string; refreshToken?: string | undefined }) => FastifyReply
    clearAuthCookies: () => FastifyReply
  }
}

const MAX_USER_AGENT = 512

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
  app.decorateRequest('principal', null)
  app.decorateRequest('requirePrincipal', function requirePrincipal(this: FastifyRequest) {
    if (!this.principal) throw unauthorized(false)
    return this.principal
  })

  app.decorateReply('setAuthCookies', function setAuthCookies(this: FastifyReply, tokens) {
    this.setCookie(names.access, tokens.accessToken, accessCookie)
    if (tokens.refreshToken) this.setCookie(names.refresh, tokens.refreshToken, refreshCookie)
    return this.header('cache-control', 'no-store')
  })
  app.decorateReply('clearAuthCookies', function clearAuthCookies(this: FastifyReply) {
    this.clearCookie(names.access, { ...base, path: accessCookie.path })
    this.clearCookie(names.refresh, { ...base, path: refreshCookie.path })
    return this.header('cache-control', 'no-store')
  })

  /** Verifies with the key its kid names: current, or the previous one during a key rotation. */
  function verifyAccessToken(token: string): AccessClaims {
    if (keys.publicKeys.size > 1) {
      const kid = (app.jwt.decode(token) as { header?: { kid?: string } } | null)?.header?.kid
      const previous = kid && kid !== keys.kid ? keys.publicKeys.get(kid) : undefined
      if (previous) return app.jwt.verify<AccessClaims>(token, { key: previous.pem })
    }
    return app.jwt.verify<AccessClaims>(token)
  }

  /** Bearer header first, else the access cookie; never the query string (RFC 6750 §2.3, ASVS 7.2). */
  app.decorate('authenticate', async function authenticate(request: FastifyRequest) {
    const header = request.headers.authorization
    let token: string | undefined
    if (header !== undefined) {
      // The scheme name is case-insensitive (RFC 9110 §11.1).
      const match = /^Bearer ([A-Za-z0-9_.~+/-]+=*)$/i.exec(header)
      if (!match) throw unauthorized(true)
      token = match[1]
    } else {
      token = request.cookies[names.access]
    }
    if (!token) throw unauthorized(false)
    let claims: AccessClaims
    try {
      claims = verifyAccessToken(token)
    } catch {
      throw unauthorized(true)
    }
    // Revoked sessions, disabled users and role changes take effect at once (ASVS 7.4.1, 8.3.1).
    const principal = await findPrincipal(app.sql, claims.sid, claims.sub)
    if (!principal) throw unauthorized(true)
    request.principal = principal
  })

  app.decorate('authorize', function authorize(role: Role) {
    return async function requireRole(request: FastifyRequest) {
      if (request.principal?.role !== role) {
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
    }
  })
}

export default fp(authPlugin, {
  name: 'auth',
  dependencies: ['config', 'db', '@fastify/jwt', '@fastify/cookie'],
})
