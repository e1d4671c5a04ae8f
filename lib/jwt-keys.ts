import { createHash, createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto'
import type { Config } from '../schemas/env.js'

/** JWT key loading: the signing key and the verification keys by kid (HS256, ES256 or EdDSA). */

export type JwtAlgorithm = 'HS256' | 'ES256' | 'EdDSA'

export interface PublicJwk extends JsonWebKey {
  kid: string
  alg: JwtAlgorithm
  use: 'sig'
}

export interface JwtKeys {
  algorithm: JwtAlgorithm
  signKey: string
  verifyKey: string
  kid?: string
  /** Public keys by kid (current and previous) for verification and the JWKS document. */
  publicKeys: Map<string, { pem: string; jwk: PublicJwk }>
}

function algorithmOf(key: KeyObject): JwtAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA'
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256'
  throw new Error('JWT keys must be EC P-256 (ES256) or Ed25519 (EdDSA)')
}

/** RFC 7638 thumbprint: a kid derived from the key itself, stable across restarts and replicas. */
function thumbprint(jwk: JsonWebKey): string {
  const members =
    jwk.kty === 'EC'
      ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
      : { crv: jwk.crv, kty: jwk.kty, x: jwk.x }
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url')
}

function publicEntry(pem: string, expected?: JwtAlgorithm) {
  const key = createPublicKey(pem)
  const alg = algorithmOf(key)
  if (expected && alg !== expected)
    throw new Error('JWT_PREVIOUS_PUBLIC_KEY must use the same algorithm as JWT_PUBLIC_KEY')
  const raw = key.export({ format: 'jwk' })
  const kid = thumbprint(raw)
  return {
    kid,
    pem: key.export({ format: 'pem', type: 'spki' }).toString(),
    jwk: { ...raw, kid, alg, use: 'sig' as const },
  }
}

/**
 * HS256 with JWT_SECRET by default; with JWT_PRIVATE_KEY/JWT_PUBLIC_KEY, ES256 or EdDSA with a kid,
 * so a gateway can verify tokens from the JWKS without sharing a secret (RFC 8725 §3.1, §3.5).
 */
export function jwtKeys(config: Config): JwtKeys {
  const publicKeys = new Map<string, { pem: string; jwk: PublicJwk }>()
  if (!config.JWT_PRIVATE_KEY || !config.JWT_PUBLIC_KEY) {
    return { algorithm: 'HS256', signKey: config.JWT_SECRET, verifyKey: config.JWT_SECRET, publicKeys }
  }
  const privateKey = createPrivateKey(config.JWT_PRIVATE_KEY)
  const current = publicEntry(config.JWT_PUBLIC_KEY)
  if (algorithmOf(privateKey) !== current.jwk.alg)
    throw new Error('JWT_PRIVATE_KEY and JWT_PUBLIC_KEY do not match')
  publicKeys.set(current.kid, current)
  if (config.JWT_PREVIOUS_PUBLIC_KEY) {
    const previous = publicEntry(config.JWT_PREVIOUS_PUBLIC_KEY, current.jwk.alg)
    publicKeys.set(previous.kid, previous)
  }
  return {
    algorithm: current.jwk.alg,
    signKey: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    verifyKey: current.pem,
    kid: current.kid,
    publicKeys,
  }
}
