import { randomBytes } from 'node:crypto'
import bcrypt from 'bcrypt'
import { invalidField } from '../lib/errors.js'

/** Password hashing and checking with bcrypt. */

/** bcrypt reads at most 72 bytes; longer input would be silently truncated (OWASP ASVS 6.2.9). */
export const MAX_PASSWORD_BYTES = 72

export function passwordTooLong(password: string): boolean {
  return Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES
}

/** The byte rule JSON Schema cannot express (maxLength counts characters). */
export function assertPasswordBytes(password: string, path: string): void {
  if (passwordTooLong(password))
    throw invalidField(path, `must be at most ${MAX_PASSWORD_BYTES} bytes in UTF-8`)
}

/** The async API runs on libuv's thread pool, so hashing never blocks the event loop. */
export function hashPassword(password: string, cost: number): Promise<string> {
  return bcrypt.hash(password, cost)
}

const dummyHashes = new Map<number, Promise<string>>()

/** Builds the dummy hash at boot, so the first unknown-user login is not slower than the rest. */
export function prepareDummyHash(cost: number): Promise<string> {
  if (!dummyHashes.has(cost)) dummyHashes.set(cost, bcrypt.hash(randomBytes(16).toString('hex'), cost))
  return dummyHashes.get(cost) as Promise<string>
}

/** A hash made under another BCRYPT_COST answers faster or slower than the rest: rehash it. */
export function needsRehash(hash: string, cost: number): boolean {
  return bcrypt.getRounds(hash) !== cost
}

/**
 * Compares against the real hash, or a dummy one of the same cost when the account does not exist,
 * so response time does not reveal which usernames exist (OWASP ASVS 6.3.8).
 */
export async function verifyPassword(
  password: string,
  hash: string | undefined,
  cost: number,
): Promise<boolean> {
  const target = hash ?? (await prepareDummyHash(cost))
  const match = await bcrypt.compare(password, target as string)
  return match && hash !== undefined && !passwordTooLong(password)
}
