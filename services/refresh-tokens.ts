import { createHash, randomBytes } from 'node:crypto'

/** Refresh tokens: generated, hashed for storage, shape-checked. */

/** 256 bits from the CSPRNG, opaque to clients (not a JWT), base64url for cookies. */
export function newRefreshToken(): { token: string; hash: Buffer } {
  const token = randomBytes(32).toString('base64url')
  return { token, hash: hashRefreshToken(token) }
}

/** Only the SHA-256 of a refresh token is stored: a database leak yields no usable token. */
export function hashRefreshToken(token: string): Buffer {
  return createHash('sha256').update(token).digest()
}

/** Shape check before any database work: 32 bytes in base64url are 43 characters. */
export const REFRESH_TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/
