import cookie, { type FastifyCookieOptions } from '@fastify/cookie'

/** Parses cookies on every request; auth cookies are set by plugins/app/auth-cookies.ts. */
export const autoConfig: FastifyCookieOptions = { hook: 'onRequest' }

export default cookie
