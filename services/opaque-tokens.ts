import { createHash, randomBytes } from 'node:crypto'
import { OPAQUE_TOKEN } from '../schemas/common.js'

/** Opaque bearer secrets (refresh tokens, sign-in challenge tokens): generated, hashed for storage, shape-checked. */

/** 256 bits from the CSPRNG, opaque to clients (not a JWT), base64url for cookies and JSON. */
export function newOpaqueToken(): { token: string; hash: Buffer } {
  const token = randomBytes(32).toString('base64url')
  return { token, hash: hashOpaqueToken(token) }
}

/** Only the SHA-256 of such a token is stored: a database leak yields no usable token. */
export function hashOpaqueToken(token: string): Buffer {
  return createHash('sha256').update(token).digest()
}

/** Shape check before any database work: 32 bytes in base64url are 43 characters. */
export const OPAQUE_TOKEN_PATTERN = new RegExp(OPAQUE_TOKEN)
