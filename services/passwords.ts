import { createHmac, randomBytes } from 'node:crypto'
import bcrypt from 'bcrypt'
import { parsePepper } from '../lib/pepper.js'
import type { Config } from '../schemas/env.js'

/**
 * Password hashing and checking (OWASP ASVS 5.0 11.4.2). A stored hash is `$bw1$` + bcrypt over
 * the base64 of HMAC-SHA-384(PASSWORD_PEPPER, NFKC(password)) (OWASP Password Storage Cheat Sheet,
 * "Pre-Hashing Passwords with Bcrypt"): 64 NUL-free characters, under bcrypt's 72-byte limit
 * whatever the password's length, and useless to whoever has the database but not the pepper. A plain
 * bcrypt hash (`$2b$…`, made by earlier releases from the raw password) is still verified, and
 * replaced at the next successful sign-in.
 */

type HashSettings = Pick<Config, 'BCRYPT_COST' | 'PASSWORD_PEPPER'>

/** The scheme marker in the stored string: self-describing, so no column or migration is needed. */
export const SCHEME = '$bw1$'
/** Hashes of earlier releases: bcrypt over the raw password. */
const LEGACY = /^\$2[aby]\$\d\d\$/
/** bcrypt reads at most 72 bytes; earlier releases refused longer passwords, so a legacy hash never matches one. */
const LEGACY_MAX_BYTES = 72

/** One visible password, one stored value: NFKC, as at registration (NIST SP 800-63B-4 §3.1.1.2). */
export const normalizePassword = (password: string): string => password.normalize('NFKC')

const pepperKeys = new Map<string, Buffer>()
/** The pepper's bytes, decoded once per value (config validated it at boot). */
function pepperKey(pepper: string): Buffer {
  let key = pepperKeys.get(pepper)
  if (!key) {
    key = parsePepper(pepper)
    pepperKeys.set(pepper, key)
  }
  return key
}

/** HMAC, not a bare hash: a leaked database without the pepper cannot be "shucked" against other breaches. */
function preHash(password: string, pepper: string): string {
  return createHmac('sha384', pepperKey(pepper)).update(normalizePassword(password), 'utf8').digest('base64')
}

/** The async API runs on libuv's thread pool, so hashing never blocks the event loop. */
export async function hashPassword(password: string, settings: HashSettings): Promise<string> {
  return SCHEME + (await bcrypt.hash(preHash(password, settings.PASSWORD_PEPPER), settings.BCRYPT_COST))
}

const dummyHashes = new Map<number, Promise<string>>()

/** Builds the dummy hash at boot, so the first unknown-user login is not slower than the rest. */
export function prepareDummyHash(cost: number): Promise<string> {
  if (!dummyHashes.has(cost)) dummyHashes.set(cost, bcrypt.hash(randomBytes(32).toString('base64'), cost))
  return dummyHashes.get(cost) as Promise<string>
}

/** A legacy hash, or one made under another BCRYPT_COST (it answers faster or slower than the rest): rehash it. */
export function needsRehash(stored: string, cost: number): boolean {
  return !stored.startsWith(SCHEME) || bcrypt.getRounds(stored.slice(SCHEME.length)) !== cost
}

/**
 * Compares against the stored hash by its scheme, or against a dummy hash of the same cost and
 * scheme when the account does not exist (or its hash is unreadable), so the time taken does not
 * reveal which usernames exist (OWASP ASVS 5.0 6.3.8): every path is one HMAC and one bcrypt compare.
 */
export async function verifyPassword(
  password: string,
  stored: string | undefined,
  settings: HashSettings,
): Promise<boolean> {
  const digest = preHash(password, settings.PASSWORD_PEPPER)
  if (stored?.startsWith(SCHEME)) return bcrypt.compare(digest, stored.slice(SCHEME.length))
  if (stored !== undefined && LEGACY.test(stored)) {
    // As earlier releases checked it: the raw password, refused past 72 bytes rather than truncated.
    const match = await bcrypt.compare(password, stored)
    return match && Buffer.byteLength(password, 'utf8') <= LEGACY_MAX_BYTES
  }
  await bcrypt.compare(digest, await prepareDummyHash(settings.BCRYPT_COST))
  return false
}
