import { Secret, TOTP } from 'otpauth'
import { renderSVG } from 'uqr'

/**
 * TOTP (RFC 6238) with the parameters every authenticator app supports: HMAC-SHA-1, 6 digits,
 * 30-second steps, a 160-bit secret (RFC 4226 §4 R6). Infrastructure only: which step is still
 * acceptable (replay) is the service's rule.
 */

const PERIOD = 30
const DIGITS = 6
const SECRET_BYTES = 20

/** A fresh secret, base32 as authenticator apps take it. */
export const newTotpSecret = (): string => new Secret({ size: SECRET_BYTES }).base32

const totpFor = (secret: string, account = '', issuer = '') =>
  new TOTP({
    issuer,
    label: account,
    issuerInLabel: issuer !== '',
    algorithm: 'SHA1',
    digits: DIGITS,
    period: PERIOD,
    secret: Secret.fromBase32(secret),
  })

/** The `otpauth://totp/...` URI an authenticator app scans. */
export const totpUri = (secret: string, account: string, issuer: string): string =>
  totpFor(secret, account, issuer).toString()

/** The code for a time (tests, and the software authenticator of the README's examples). */
export const totpCode = (secret: string, timestampMs = Date.now()): string =>
  totpFor(secret).generate({ timestamp: timestampMs })

export const TOTP_CODE = /^\d{6}$/

/**
 * The time step a code belongs to when it matches within ±`window` steps of now (clock drift,
 * RFC 6238 §5.2), else null. The comparison is constant-time (otpauth uses timingSafeEqual).
 */
export function matchTotp(
  secret: string,
  code: string,
  window: number,
  timestampMs = Date.now(),
): number | null {
  if (!TOTP_CODE.test(code)) return null
  const delta = totpFor(secret).validate({ token: code, timestamp: timestampMs, window })
  if (delta === null) return null
  return Math.floor(timestampMs / 1000 / PERIOD) + delta
}

/** A QR code of `text` as an SVG data URL, for an <img src>. */
export const qrSvgDataUrl = (text: string): string =>
  `data:image/svg+xml;base64,${Buffer.from(renderSVG(text, { ecc: 'M', border: 2 })).toString('base64')}`

/** `bytes` random bytes in lower-case base32 (RFC 4648 alphabet, no padding when bytes % 5 = 0). */
export const randomBase32 = (bytes: number): string => new Secret({ size: bytes }).base32.toLowerCase()
