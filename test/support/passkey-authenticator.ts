import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto'
import type { InjectOptions } from 'light-my-request'
import type { App, InjectResponse } from '../helper.js'

/**
 * A software WebAuthn authenticator and client for tests: an ES256 key pair, authenticator data,
 * client data JSON, a `none` attestation and DER signatures, built byte by byte (WebAuthn L3 §6.1,
 * §6.5, §5.8.1), so a test can drive real ceremonies and break any part of them on purpose.
 */

/** Authenticator data flags (WebAuthn L3 §6.1). */
export const FLAGS = { UP: 0x01, UV: 0x04, BE: 0x08, BS: 0x10, AT: 0x40 } as const

type Cbor = number | string | Uint8Array | Map<number | string, Cbor> | { [key: string]: Cbor }

function head(major: number, n: number): Buffer {
  if (n < 24) return Buffer.from([(major << 5) | n])
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n])
  if (n < 0x10000) return Buffer.from([(major << 5) | 25, n >> 8, n & 0xff])
  const b = Buffer.alloc(5)
  b[0] = (major << 5) | 26
  b.writeUInt32BE(n, 1)
  return b
}

/** A tiny CBOR encoder (RFC 8949): integers, byte and text strings, maps with int or text keys. */
export function cbor(value: Cbor): Buffer {
  if (typeof value === 'number') return value >= 0 ? head(0, value) : head(1, -1 - value)
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8')
    return Buffer.concat([head(3, bytes.length), bytes])
  }
  if (value instanceof Uint8Array) return Buffer.concat([head(2, value.length), value])
  const entries = value instanceof Map ? [...value.entries()] : Object.entries(value)
  return Buffer.concat([head(5, entries.length), ...entries.flatMap(([k, v]) => [cbor(k), cbor(v)])])
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest()
const b64 = (data: Buffer | Uint8Array) => Buffer.from(data).toString('base64url')

export interface CreationOptions {
  challenge: string
  rp: { id?: string }
  user: { id: string }
}
export interface RequestOptions {
  challenge: string
}

/** What a test may change in one ceremony to attack it. */
export interface CeremonyTweaks {
  origin?: string
  rpId?: string
  type?: string
  challenge?: string
  /** The flags byte as sent (default UP|UV, plus BE/BS as the authenticator is, plus AT when creating). */
  flags?: number
  /** The signature counter sent (default: the next one). */
  counter?: number
  /** Flip a bit of the signature. */
  tamper?: boolean
  /** The user handle sent (default: the one registered; null: none). */
  userHandle?: string | null
  /** Answer with another authenticator's credential id (its key still signs). */
  credentialId?: Buffer
  /** clientDataJSON.crossOrigin (default false: a top-level page). */
  crossOrigin?: boolean
}

export class SoftAuthenticator {
  readonly credentialId = randomBytes(32)
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
  counter = 0
  userHandle: string | null = null

  constructor(
    readonly origin = 'http://localhost:3000',
    readonly rpId = 'localhost',
    /** Backup eligible and backed up: a synced passkey; false: device-bound. */
    readonly synced = false,
    /** Whether it keeps a signature counter (synced passkeys usually send 0). */
    readonly counts = true,
  ) {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    this.privateKey = pair.privateKey
    this.publicKey = pair.publicKey
  }

  /** The COSE_Key of the public key (RFC 9053 §7.1.1: kty EC2, alg ES256, crv P-256, x, y). */
  cosePublicKey(): Buffer {
    const jwk = this.publicKey.export({ format: 'jwk' })
    const coord = (v: string | undefined) => Buffer.from(v ?? '', 'base64url')
    return cbor(
      new Map<number, Cbor>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, coord(jwk.x)],
        [-3, coord(jwk.y)],
      ]),
    )
  }

  private backupFlags(): number {
    return this.synced ? FLAGS.BE | FLAGS.BS : 0
  }

  private authData(t: CeremonyTweaks, flags: number, counter: number, attested?: Buffer): Buffer {
    const count = Buffer.alloc(4)
    count.writeUInt32BE(counter)
    return Buffer.concat([
      sha256(t.rpId ?? this.rpId),
      Buffer.from([flags]),
      count,
      ...(attested ? [attested] : []),
    ])
  }

  private clientData(type: string, challenge: string, t: CeremonyTweaks): Buffer {
    const data = {
      type: t.type ?? type,
      challenge: t.challenge ?? challenge,
      origin: t.origin ?? this.origin,
      crossOrigin: t.crossOrigin ?? false,
    }
    return Buffer.from(JSON.stringify(data))
  }

  /** navigator.credentials.create(): a RegistrationResponseJSON with a `none` attestation. */
  create(options: CreationOptions, t: CeremonyTweaks = {}) {
    this.userHandle = options.user.id
    const id = t.credentialId ?? this.credentialId
    const length = Buffer.alloc(2)
    length.writeUInt16BE(id.length)
    const attested = Buffer.concat([Buffer.alloc(16), length, id, this.cosePublicKey()])
    const flags = t.flags ?? FLAGS.UP | FLAGS.UV | FLAGS.AT | this.backupFlags()
    const authData = this.authData(t, flags, t.counter ?? this.counter, attested)
    const attestationObject = cbor({ fmt: 'none', attStmt: {}, authData })
    return {
      id: b64(id),
      rawId: b64(id),
      type: 'public-key' as const,
      response: {
        clientDataJSON: b64(this.clientData('webauthn.create', options.challenge, t)),
        attestationObject: b64(attestationObject),
        transports: ['internal', 'hybrid'],
      },
      clientExtensionResults: {},
    }
  }

  /** navigator.credentials.get(): an AuthenticationResponseJSON signed with the private key. */
  get(options: RequestOptions, t: CeremonyTweaks = {}) {
    if (t.counter === undefined && this.counts) this.counter += 1
    const counter = t.counter ?? (this.counts ? this.counter : 0)
    // A counter sent on purpose moves the authenticator's forward (never back), as a real one would.
    this.counter = Math.max(this.counter, counter)
    const flags = t.flags ?? FLAGS.UP | FLAGS.UV | this.backupFlags()
    const authData = this.authData(t, flags, counter)
    const clientDataJSON = this.clientData('webauthn.get', options.challenge, t)
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientDataJSON)]), this.privateKey)
    if (t.tamper) signature[signature.length - 1] = (signature[signature.length - 1] ?? 0) ^ 0x01
    const id = t.credentialId ?? this.credentialId
    const userHandle = t.userHandle === undefined ? this.userHandle : t.userHandle
    return {
      id: b64(id),
      rawId: b64(id),
      type: 'public-key' as const,
      response: {
        clientDataJSON: b64(clientDataJSON),
        authenticatorData: b64(authData),
        signature: b64(signature),
        ...(userHandle ? { userHandle } : {}),
      },
      clientExtensionResults: {},
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Ceremonies through the API.

type Inject = (options: InjectOptions) => Promise<InjectResponse>

/** app.inject without credentials, in the shape the helpers below take. */
export const anonymous =
  (app: App): Inject =>
  (options) =>
    app.inject(options)

/** Registration options, then the authenticator's answer: the answer to POST /register. */
export async function registerPasskey(
  inject: Inject,
  authenticator: SoftAuthenticator,
  options: { name?: string; tweaks?: CeremonyTweaks } = {},
) {
  const started = await inject({ method: 'POST', url: '/api/auth/passkeys/register/options' })
  if (started.statusCode !== 200) throw new Error(`register/options: ${started.statusCode} ${started.body}`)
  const credential = authenticator.create(started.json<CreationOptions>(), options.tweaks)
  const payload = { credential, ...(options.name === undefined ? {} : { name: options.name }) }
  return inject({ method: 'POST', url: '/api/auth/passkeys/register', payload })
}

/** Login options (with an optional username), then the authenticator's assertion: the answer to POST /login. */
export async function passkeyLogin(
  inject: Inject,
  authenticator: SoftAuthenticator,
  options: { username?: string; tweaks?: CeremonyTweaks; remoteAddress?: string } = {},
) {
  const from = options.remoteAddress ? { remoteAddress: options.remoteAddress } : {}
  const body = options.username === undefined ? {} : { username: options.username }
  const started = await inject({
    method: 'POST',
    url: '/api/auth/passkeys/login/options',
    payload: body,
    ...from,
  })
  if (started.statusCode !== 200) throw new Error(`login/options: ${started.statusCode} ${started.body}`)
  const credential = authenticator.get(started.json<RequestOptions>(), options.tweaks)
  return inject({ method: 'POST', url: '/api/auth/passkeys/login', payload: { credential }, ...from })
}
