import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto'

/**
 * Field-level encryption of personal data at rest: AES-256-GCM with a fresh 96-bit nonce per value
 * (NIST SP 800-38D), the key id in the ciphertext, and associated data that binds each value to its
 * table, column and row, so a value copied elsewhere does not decrypt. Blind indexes (HMAC-SHA-256
 * under a separate key) make exact lookups possible without the plaintext (OWASP ASVS 11.3, 14.2).
 */

/** Where a value lives: part of the associated data, so it decrypts only there. */
export interface FieldPlace {
  table: string
  column: string
  rowId: string
}

/** Stored form: `enc:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`. */
const PREFIX = 'enc:v1:'
const NONCE_BYTES = 12
const TAG_BYTES = 16
export const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/

/** A value could not be decrypted: tampered, moved to another row or column, or its key is gone. */
export class DecryptionError extends Error {
  override name = 'DecryptionError'
  constructor(readonly place: FieldPlace) {
    super(`cannot decrypt ${place.table}.${place.column} of row ${place.rowId}`)
  }
}

export interface FieldCipher {
  /** The key id new values are encrypted under. */
  readonly activeKeyId: string
  encrypt(value: string, place: FieldPlace): string
  encrypt(value: string | null, place: FieldPlace): string | null
  decrypt(value: string, place: FieldPlace): string
  decrypt(value: string | null, place: FieldPlace): string | null
  /** The key id a stored value was encrypted under, or null when it is plaintext. */
  keyIdOf(stored: string): string | null
  /** HMAC-SHA-256 of a normalized value, for unique indexes and exact lookups. */
  blindIndex(value: string): Buffer
}

const aad = (p: FieldPlace) => Buffer.from(`bulwark:${p.table}.${p.column}:${p.rowId}`)

/**
 * Parses `id:base64key,id:base64key` (each key 32 bytes; the first encrypts, all decrypt) and the
 * 32-byte index key. Throws an Error naming the setting, never a key.
 */
export function parseDataKeys(keys: string, indexKey: string): { keys: Map<string, Buffer>; index: Buffer } {
  const parsed = new Map<string, Buffer>()
  for (const entry of keys
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const [id = '', material = '', ...rest] = entry.split(':')
    const key = Buffer.from(material, 'base64')
    if (rest.length > 0 || !KEY_ID.test(id) || key.length !== 32 || parsed.has(id)) {
      throw new Error('DATA_ENCRYPTION_KEYS must be distinct id:base64key pairs of 32-byte keys')
    }
    parsed.set(id, key)
  }
  if (parsed.size === 0) throw new Error('DATA_ENCRYPTION_KEYS must name at least one key')
  const index = Buffer.from(indexKey, 'base64')
  if (index.length !== 32) throw new Error('DATA_INDEX_KEY must be a base64 32-byte key')
  return { keys: parsed, index }
}

export function createFieldCipher(config: {
  DATA_ENCRYPTION_KEYS: string
  DATA_INDEX_KEY: string
}): FieldCipher {
  const { keys, index } = parseDataKeys(config.DATA_ENCRYPTION_KEYS, config.DATA_INDEX_KEY)
  const [activeKeyId, activeKey] = [...keys.entries()][0] as [string, Buffer]

  function encrypt(value: string | null, place: FieldPlace): string | null {
    if (value === null) return null
    const nonce = randomBytes(NONCE_BYTES)
    const cipher = createCipheriv('aes-256-gcm', activeKey, nonce).setAAD(aad(place))
    const body = Buffer.concat([nonce, cipher.update(value, 'utf8'), cipher.final(), cipher.getAuthTag()])
    return `${PREFIX}${activeKeyId}:${body.toString('base64url')}`
  }

  function keyIdOf(stored: string): string | null {
    if (!stored.startsWith(PREFIX)) return null
    const end = stored.indexOf(':', PREFIX.length)
    return end > PREFIX.length ? stored.slice(PREFIX.length, end) : null
  }

  /**
   * Values already opened, by place and stored form: a signed-in user's email is opened on every
   * `GET /api/users/me`, and AES-GCM's setup is most of its cost. A pure function of its key (the
   * place is part of it, so a value moved to another row still fails); bounded, oldest out first.
   */
  const opened = new Map<string, string>()
  const MAX_OPENED = 4096

  function decrypt(value: string | null, place: FieldPlace): string | null {
    if (value === null) return null
    const memo = `${place.table}.${place.column}:${place.rowId}\n${value}`
    const known = opened.get(memo)
    if (known !== undefined) return known
    const plain = open(value, place)
    if (opened.size >= MAX_OPENED) opened.delete(opened.keys().next().value as string)
    opened.set(memo, plain)
    return plain
  }

  function open(value: string, place: FieldPlace): string {
    const id = keyIdOf(value)
    const key = id === null ? undefined : keys.get(id)
    // Fail closed: plaintext, an unknown key, a tampered or moved value never come back as data.
    if (id === null || !key) throw new DecryptionError(place)
    const body = Buffer.from(value.slice(PREFIX.length + id.length + 1), 'base64url')
    if (body.length < NONCE_BYTES + TAG_BYTES) throw new DecryptionError(place)
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, body.subarray(0, NONCE_BYTES))
        .setAAD(aad(place))
        .setAuthTag(body.subarray(body.length - TAG_BYTES))
      const text = decipher.update(body.subarray(NONCE_BYTES, body.length - TAG_BYTES))
      return Buffer.concat([text, decipher.final()]).toString('utf8')
    } catch {
      throw new DecryptionError(place)
    }
  }

  return {
    activeKeyId,
    encrypt: encrypt as FieldCipher['encrypt'],
    decrypt: decrypt as FieldCipher['decrypt'],
    keyIdOf,
    blindIndex: (value) => createHmac('sha256', index).update(value).digest(),
  }
}

/** Emails are compared as typed lower-case and trimmed: one address, one index value. */
export const normalizeEmail = (email: string): string => email.trim().toLowerCase()

/** A client's address and user agent, as kept beside sessions, refresh tokens and audit events. */
export interface Origin {
  ip: string | null
  userAgent: string | null
}

/** An origin encrypted for its row (columns `ip` and `user_agent`), and back. */
export function sealOrigin(cipher: FieldCipher, table: string, rowId: string, origin: Origin): Origin {
  return {
    ip: cipher.encrypt(origin.ip, { table, column: 'ip', rowId }),
    userAgent: cipher.encrypt(origin.userAgent, { table, column: 'user_agent', rowId }),
  }
}

export function openOrigin(cipher: FieldCipher, table: string, rowId: string, origin: Origin): Origin {
  return {
    ip: cipher.decrypt(origin.ip, { table, column: 'ip', rowId }),
    userAgent: cipher.decrypt(origin.userAgent, { table, column: 'user_agent', rowId }),
  }
}
