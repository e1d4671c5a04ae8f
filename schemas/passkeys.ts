import { type Static, Type } from '@sinclair/typebox'
import { ProblemSchema, ref } from './common.js'
import {
  AuthenticationCredential,
  EXAMPLE_CLIENT_DATA,
  EXAMPLE_ID,
  RegistrationCredential,
} from './webauthn.js'

/** Schemas of passkeys: the ceremonies' bodies, and the passkeys a user has (WebAuthn shapes: schemas/webauthn.ts). */

/** A name the user chose; trimmed, 1–64 characters without control characters (services/passkeys.ts). */
export const PasskeyName = Type.String({
  minLength: 1,
  maxLength: 64,
  description: 'Your name for this passkey (trimmed, 1–64 characters, no control characters).',
  'x-message': 'must be 1–64 characters',
})

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

/** What every passkey route may answer when passkeys are off. */
export const passkeysOff = {
  501: ref(ProblemSchema, {
    description: 'Passkeys are off on this service (WEBAUTHN_ORIGINS=none): passkeys-disabled',
  }),
}

/** How every failed ceremony answers, for the routes' descriptions. */
export const CEREMONY_FAILED =
  'Every failed ceremony (unknown or foreign credential, wrong origin or RP ID, bad signature, ' +
  'replayed or expired challenge, cloned authenticator) answers the same 401 `invalid-passkey`.'
