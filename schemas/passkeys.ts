import { type Static, Type } from '@sinclair/typebox'
import { ref } from './common.js'

/** Schemas of passkeys (WebAuthn Level 3): ceremony options and responses, and the passkeys a user has. */

/** base64url without padding, as PublicKeyCredential.toJSON() and @simplewebauthn/browser send it. */
const b64url = (maxLength: number, description?: string) =>
  Type.String({
    minLength: 1,
    maxLength,
    pattern: '^[A-Za-z0-9_-]+$',
    'x-message': 'must be base64url',
    ...(description ? { description } : {}),
  })
/** A credential id: at most 1023 bytes (WebAuthn L3 §5.1), so at most 1364 base64url characters. */
const CredentialId = b64url(1364)
/** clientDataJSON, attestationObject, authenticatorData, signature: 16 KiB is far above any real one. */
const Blob16k = b64url(16_384)
const Transport = Type.String({
  pattern: '^[a-z-]{1,32}$',
  'x-message': 'must be an authenticator transport',
})
const Transports = Type.Array(Transport, { maxItems: 10 })
const ClientExtensionResults = Type.Object({}, { additionalProperties: true, maxProperties: 20 })
const Attachment = Type.Union([Type.Literal('platform'), Type.Literal('cross-platform')])

/** A name the user chose; trimmed, 1–64 characters without control characters (services/passkeys.ts). */
export const PasskeyName = Type.String({
  minLength: 1,
  maxLength: 64,
  description: 'Your name for this passkey (trimmed, 1–64 characters, no control characters).',
  'x-message': 'must be 1–64 characters',
})

/** RegistrationResponseJSON (WebAuthn L3 §5.1, toJSON()). */
const RegistrationCredential = Type.Object(
  {
    id: CredentialId,
    rawId: CredentialId,
    type: Type.Literal('public-key'),
    response: Type.Object(
      {
        clientDataJSON: Blob16k,
        attestationObject: Blob16k,
        authenticatorData: Type.Optional(Blob16k),
        transports: Type.Optional(Transports),
        publicKeyAlgorithm: Type.Optional(Type.Integer({ minimum: -65_535, maximum: 65_535 })),
        publicKey: Type.Optional(Blob16k),
      },
      { additionalProperties: false },
    ),
    authenticatorAttachment: Type.Optional(Attachment),
    clientExtensionResults: ClientExtensionResults,
  },
  { additionalProperties: false, description: 'What navigator.credentials.create() answered, as JSON.' },
)

/** AuthenticationResponseJSON (WebAuthn L3 §5.1, toJSON()). */
const AuthenticationCredential = Type.Object(
  {
    id: CredentialId,
    rawId: CredentialId,
    type: Type.Literal('public-key'),
    response: Type.Object(
      {
        clientDataJSON: Blob16k,
        authenticatorData: Blob16k,
        signature: Blob16k,
        userHandle: Type.Optional(Type.Union([b64url(86), Type.Null()])),
      },
      { additionalProperties: false },
    ),
    authenticatorAttachment: Type.Optional(Attachment),
    clientExtensionResults: ClientExtensionResults,
  },
  { additionalProperties: false, description: 'What navigator.credentials.get() answered, as JSON.' },
)

const EXAMPLE_ID = 'Xk3sA9vQ1m2uT0cYbLw8rJpZ4nHdE6fGqRs7tUvWxYz'
const EXAMPLE_CLIENT_DATA =
  'eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIiwiY2hhbGxlbmdlIjoiLi4uIiwib3JpZ2luIjoiaHR0cHM6Ly9hcHAuZXhhbXBsZS5jb20ifQ'

export const RegisterPasskeyBody = Type.Object(
  { name: Type.Optional(PasskeyName), credential: RegistrationCredential },
  {
    additionalProperties: false,
    examples: [
      {
        name: 'Work laptop',
        credential: {
          id: EXAMPLE_ID,
          rawId: EXAMPLE_ID,
          type: 'public-key',
          response: {
            clientDataJSON: EXAMPLE_CLIENT_DATA,
            attestationObject: 'o2NmbXRkbm9uZWdhdHRTdG10oGhhdXRoRGF0YVjF',
            transports: ['internal', 'hybrid'],
          },
          authenticatorAttachment: 'platform',
          clientExtensionResults: { credProps: { rk: true } },
        },
      },
    ],
  },
)
export type RegisterPasskeyBody = Static<typeof RegisterPasskeyBody>

export const PasskeyLoginOptionsBody = Type.Object(
  {
    username: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 254,
        description: 'Optional: only a passkey of this account may answer. Omit it for discoverable sign-in.',
      }),
    ),
  },
  { additionalProperties: false, examples: [{}, { username: 'alice' }] },
)
export type PasskeyLoginOptionsBody = Static<typeof PasskeyLoginOptionsBody>

export const PasskeyLoginBody = Type.Object(
  { credential: AuthenticationCredential },
  {
    additionalProperties: false,
    examples: [
      {
        credential: {
          id: EXAMPLE_ID,
          rawId: EXAMPLE_ID,
          type: 'public-key',
          response: {
            clientDataJSON: EXAMPLE_CLIENT_DATA,
            authenticatorData: 'SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MdAAAAAA',
            signature: 'MEUCIQDx3kq2b7YV0m4rJpZ4nHdE6fGqRs7tUvWxYzXk3sA9vQIgZ5c',
            userHandle: 'C29qUowdTnqfJW08KxoOlA',
          },
          clientExtensionResults: {},
        },
      },
    ],
  },
)
export type PasskeyLoginBody = Static<typeof PasskeyLoginBody>

export const RenamePasskeyBody = Type.Object(
  { name: PasskeyName },
  { additionalProperties: false, examples: [{ name: 'Work laptop' }] },
)
export type RenamePasskeyBody = Static<typeof RenamePasskeyBody>

const Loose = (description: string) => Type.Object({}, { additionalProperties: true, description })

/** PublicKeyCredentialCreationOptionsJSON: pass it to navigator.credentials.create (after base64url decoding). */
export const CreationOptions = Type.Object(
  {
    challenge: Type.String(),
    rp: Type.Object({ name: Type.String(), id: Type.Optional(Type.String()) }),
    user: Type.Object({ id: Type.String(), name: Type.String(), displayName: Type.String() }),
    pubKeyCredParams: Type.Array(Type.Object({ alg: Type.Integer(), type: Type.Literal('public-key') })),
    timeout: Type.Optional(Type.Integer()),
    attestation: Type.Optional(Type.String()),
    excludeCredentials: Type.Optional(
      Type.Array(Loose('An existing passkey of yours: { id, type, transports }')),
    ),
    authenticatorSelection: Type.Optional(Loose('residentKey required, userVerification required')),
    extensions: Type.Optional(Loose('credProps')),
    hints: Type.Optional(Type.Array(Type.String())),
  },
  { description: 'PublicKeyCredentialCreationOptionsJSON (WebAuthn L3 §5.4)' },
)

/** PublicKeyCredentialRequestOptionsJSON: pass it to navigator.credentials.get. */
export const RequestOptions = Type.Object(
  {
    challenge: Type.String(),
    rpId: Type.Optional(Type.String()),
    timeout: Type.Optional(Type.Integer()),
    userVerification: Type.Optional(Type.String()),
    allowCredentials: Type.Optional(Type.Array(Loose('Always empty: passkeys are discoverable credentials'))),
  },
  { description: 'PublicKeyCredentialRequestOptionsJSON (WebAuthn L3 §5.5)' },
)

export const Passkey = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    name: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    deviceType: Type.Union([Type.Literal('singleDevice'), Type.Literal('multiDevice')], {
      description:
        'multiDevice: the passkey may be synced (backup eligible); singleDevice: bound to one authenticator.',
    }),
    backedUp: Type.Boolean({ description: 'Whether the passkey was backed up (synced) when last used.' }),
    transports: Type.Array(Type.String()),
  },
  {
    $id: 'Passkey',
    additionalProperties: false,
    examples: [
      {
        id: '3f2a1c9e-7b4d-4e8a-9c61-2d5f0a7b8e13',
        name: 'Work laptop',
        createdAt: '2025-01-31T09:30:00.000Z',
        lastUsedAt: null,
        deviceType: 'multiDevice',
        backedUp: true,
        transports: ['internal', 'hybrid'],
      },
    ],
  },
)
export type Passkey = Static<typeof Passkey>

export const PasskeyList = Type.Object({ items: Type.Array(ref(Passkey)) }, { $id: 'PasskeyList' })

export const PASSKEY_SCHEMAS = [Passkey, PasskeyList]
