import jwt, { type FastifyJWTOptions } from '@fastify/jwt'
import type { FastifyInstance } from 'fastify'

/**
 * One pinned algorithm, and iss, aud and exp required on every token: `alg: none`, another
 * algorithm, a wrong key or a missing claim are all rejected (RFC 8725 §3.1, §3.8, §3.9). Access
 * tokens are typed `at+jwt` and only that type is accepted (RFC 9068 §2.1, §4; RFC 8725 §3.11), so
 * no other JWT signed with the same key passes for one.
 */
export const autoConfig = (app: FastifyInstance): FastifyJWTOptions => {
  const keys = app.jwtKeys
  const { JWT_ISSUER: iss, JWT_AUDIENCE: aud, ACCESS_TOKEN_TTL_SECONDS: ttl } = app.config
  return {
    secret: keys.algorithm === 'HS256' ? keys.signKey : { private: keys.signKey, public: keys.verifyKey },
    sign: {
      algorithm: keys.algorithm,
      iss,
      aud,
      expiresIn: `${ttl}s`,
      header: { alg: keys.algorithm, typ: 'at+jwt' },
      ...(keys.kid ? { kid: keys.kid } : {}),
    },
    verify: {
      algorithms: [keys.algorithm],
      allowedIss: iss,
      allowedAud: aud,
      requiredClaims: ['exp', 'iat', 'iss', 'aud', 'sub', 'sid'],
      checkTyp: 'at+jwt',
    },
    decode: { complete: true },
  }
}

export default jwt
