/** The password pepper: a server-side secret kept out of the database (OWASP Password Storage Cheat Sheet, "Peppering"). */

/** 256 bits at least: HMAC-SHA-384 keys shorter than that would weaken it (NIST SP 800-107r1 §5.3.4). */
export const MIN_PEPPER_BYTES = 32

/** The pepper's bytes from its base64 (or base64url) text; throws an Error naming the setting, never the value. */
export function parsePepper(text: string): Buffer {
  const key = Buffer.from(text, 'base64')
  if (key.length < MIN_PEPPER_BYTES) {
    throw new Error(`PASSWORD_PEPPER must be base64 of at least ${MIN_PEPPER_BYTES} bytes`)
  }
  return key
}
