import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

/** Auth cookies: their names and attributes, and setting, clearing and reading them. */

declare module 'fastify' {
  interface FastifyInstance {
    authCookies: AuthCookieNames
  }
  interface FastifyRequest {
    /** The access cookie's token, or undefined when absent or empty. */
    accessCookie: () => string | undefined
    /** The refresh cookie, or undefined when absent or sent more than once (cookie tossing). */
    refreshCookie: () => string | undefined
    /** Every value of the device cookie as sent (unverified): the service keeps the one issued to the account. */
    deviceCookies: () => string[]
  }
  interface FastifyReply {
    setAuthCookies: (tokens: SignInTokens) => FastifyReply
    clearAuthCookies: () => FastifyReply
    /**
     * Ends a completed sign-in (password, second factor, passkey): sets its cookies and returns the
     * body, from which the refresh token and the device cookie are taken out (they travel as cookies only).
     */
    signedIn: <T extends SignInTokens>(result: T) => Omit<T, keyof SignInCookies> & { tokenType: 'Bearer' }
  }
}

interface SignInCookies {
  refreshToken?: string | undefined
  refreshExpiresIn?: number | undefined
  /** Set at sign-in; sign-out keeps it, so the device stays known to the account. */
  deviceCookie?: string | undefined
}
type SignInTokens = { accessToken: string } & SignInCookies

export interface AuthCookieNames {
  access: string
  refresh: string
  device: string
}

/**
 * The one source of the cookie names (also printed by the OpenAPI security schemes). __Host- binds
 * the access cookie to this exact host over https; __Secure- marks the refresh cookie (RFC 6265bis §4.1.3).
 */
export function authCookieNames(secure: boolean): AuthCookieNames {
  return secure
    ? { access: '__Host-access_token', refresh: '__Secure-refresh_token', device: '__Host-device' }
    : { access: 'access_token', refresh: 'refresh_token', device: 'device' }
}

async function authCookiesPlugin(app: FastifyInstance) {
  const { config } = app
  const names = authCookieNames(config.COOKIE_SECURE)
  // HttpOnly: no script reads them; SameSite=Strict: no cross-site request carries them (ASVS 3.3.1-3.3.4).
  const base = { httpOnly: true, secure: config.COOKIE_SECURE, sameSite: 'strict' as const }
  const accessCookie = { ...base, path: '/', maxAge: config.ACCESS_TOKEN_TTL_SECONDS }
  const refreshCookie = { ...base, path: '/api/auth', maxAge: config.REFRESH_TOKEN_TTL_SECONDS }
  // Path=/ because the password checks it eases live under /api/auth and /api/users (and __Host- needs it).
  const deviceCookie = { ...base, path: '/', maxAge: config.DEVICE_COOKIE_MAX_AGE_SECONDS }
  app.decorate('authCookies', names)

  app.decorateRequest('accessCookie', function readAccessCookie(this: FastifyRequest) {
    return this.cookies[names.access] || undefined
  })
  // A sibling subdomain can plant a second cookie of the same name ("cookie tossing"); with two,
  // we cannot tell ours, so we take neither (OWASP Session Management cheat sheet).
  const refreshName = new RegExp(`(?:^|;)\\s*${names.refresh.replace(/[-_]/g, '\\$&')}=`, 'g')
  app.decorateRequest('refreshCookie', function readRefreshCookie(this: FastifyRequest) {
    const header = this.headers.cookie ?? ''
    if ((header.match(refreshName) ?? []).length > 1) return undefined
    return this.cookies[names.refresh]
  })

  // Without __Host- (COOKIE_SECURE=false) a sibling subdomain can plant a second `device` cookie
  // sent before ours; every value is kept, so a planted one cannot hide the owner's.
  const deviceName = new RegExp(`(?:^|;)\\s*${names.device.replace(/[-_]/g, '\\$&')}=([^;]*)`, 'g')
  app.decorateRequest('deviceCookies', function readDeviceCookies(this: FastifyRequest) {
    const header = this.headers.cookie ?? ''
    return [...header.matchAll(deviceName)].map((m) => (m[1] ?? '').trim()).slice(0, 8)
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
    if (tokens.deviceCookie) this.setCookie(names.device, tokens.deviceCookie, deviceCookie)
    return this.header('cache-control', 'no-store')
  })
  app.decorateReply('signedIn', function signedIn<T extends SignInTokens>(this: FastifyReply, result: T) {
    const { refreshToken, refreshExpiresIn, deviceCookie, ...body } = result
    this.setAuthCookies(result)
    return { ...body, tokenType: 'Bearer' as const }
  })
  app.decorateReply('clearAuthCookies', function clearAuthCookies(this: FastifyReply) {
    this.clearCookie(names.access, { ...base, path: accessCookie.path })
    this.clearCookie(names.refresh, { ...base, path: refreshCookie.path })
    return this.header('cache-control', 'no-store')
  })
}

export default fp(authCookiesPlugin, { name: 'auth-cookies', dependencies: ['config', '@fastify/cookie'] })
