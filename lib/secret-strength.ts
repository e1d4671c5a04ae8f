import { createHmac, timingSafeEqual } from 'node:crypto'

/** How strong a secret setting is: the same key as a public one, or too predictable to sign with. */

/**
 * Two HMAC keys are the same key when they give the same MAC: HMAC zero-pads a key shorter than its
 * block, so "key" and "key\0" are one key, and a byte comparison would miss it.
 */
export function sameHmacKey(a: Buffer | string, b: Buffer | string): boolean {
  const probe = (key: Buffer | string) => createHmac('sha384', key).update('bulwark key probe').digest()
  return timingSafeEqual(probe(a), probe(b))
}

/**
 * An estimate of a secret's strength in bits: its length times the Shannon entropy of its own
 * characters. A repeated or patterned string ("aaaa…", "abababab…") scores near zero; 32 random
 * bytes in base64 or hex score well above 128. Generous to human phrases, which are refused by
 * length and by the development check instead.
 */
export function estimatedBits(secret: string): number {
  const chars = [...secret]
  const counts = new Map<string, number>()
  for (const c of chars) counts.set(c, (counts.get(c) ?? 0) + 1)
  let perChar = 0
  for (const n of counts.values()) {
    const p = n / chars.length
    perChar -= p * Math.log2(p)
  }
  return perChar * chars.length
}

/** At least this many estimated bits for a signing secret (RFC 8725 §3.5; NIST SP 800-107 §5.3.4). */
export const MIN_SECRET_BITS = 128
