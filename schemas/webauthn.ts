import { Type } from '@sinclair/typebox'

/** The JSON shapes of WebAuthn Level 3 ceremonies (§5.1 toJSON(), §5.4, §5.5), bounded for our inputs. */

/** base64url without padding, as PublicKeyCredential.toJSON() and @simplewebauthn/browser send it. */
const b64url = (maxLength: number) =>
  Type.String({ minLength: 1, maxLength, pattern: '^[A-Za-z0-9_-]+$', 'x-message': 'must be base64url' })
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

/** RegistrationResponseJSON (WebAuthn L3 §5.1, toJSON()). */
export const RegistrationCredential = Type.Object(
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
export const AuthenticationCredential = Type.Object(
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

export const EXAMPLE_ID = 'Xk3sA9vQ1m2uT0cYbLw8rJpZ4nHdE6fGqRs7tUvWxYz'
export const EXAMPLE_CLIENT_DATA =
  'eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIiwiY2hhbGxlbmdlIjoiLi4uIiwib3JpZ2luIjoiaHR0cHM6Ly9hcHAuZXhhbXBsZS5jb20ifQ'

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
