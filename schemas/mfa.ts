import { type Static, Type } from '@sinclair/typebox'
import { PresentedPassword } from './auth.js'
import { OPAQUE_TOKEN } from './common.js'

/** Schemas of two-factor authentication (TOTP, recovery codes) and of re-authentication. */

/** The opaque challenge token of a sign-in's second step: 32 bytes, base64url. */
const MfaToken = Type.String({
  pattern: OPAQUE_TOKEN,
  'x-message': 'must be the mfaToken from login',
})

/** A 6-digit TOTP code, or a recovery code (letters and digits, dashes and spaces ignored). */
export const MfaCode = Type.String({
  minLength: 6,
  maxLength: 64,
  pattern: '^[A-Za-z0-9 -]+$',
  description: 'A 6-digit code from the authenticator app, or one of the recovery codes.',
  'x-message': 'must be a 6-digit code or a recovery code',
})

export const MfaVerifyBody = Type.Object(
  { mfaToken: MfaToken, code: MfaCode },
  {
    additionalProperties: false,
    examples: [{ mfaToken: 'q3Vd8xYb2Lk0N6pWmZr4Ts1Hc9Ue5Ja7Gf2Ei0Do8Bn', code: '492039' }],
  },
)
export type MfaVerifyBody = Static<typeof MfaVerifyBody>

export const TotpCode = Type.String({ pattern: '^[0-9]{6}$', 'x-message': 'must be the 6-digit code' })
export const TotpConfirmBody = Type.Object(
  { code: TotpCode },
  { additionalProperties: false, examples: [{ code: '492039' }] },
)

export const TotpEnrolment = Type.Object(
  {
    secret: Type.String({ description: 'Base32, for apps that take it typed in.' }),
    otpauthUri: Type.String({ description: 'The otpauth://totp/ URI the QR code holds.' }),
    qrCode: Type.String({ description: 'An SVG data URL of the QR code, for an <img src>.' }),
  },
  {
    $id: 'TotpEnrolment',
    examples: [
      {
        secret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP',
        otpauthUri: 'otpauth://totp/Bulwark:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Bulwark',
        qrCode: 'data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=',
      },
    ],
  },
)
export type TotpEnrolment = Static<typeof TotpEnrolment>

export const RecoveryCodes = Type.Object(
  {
    recoveryCodes: Type.Array(Type.String(), {
      description: 'Ten single-use codes, shown once: each signs in once in place of a TOTP code.',
    }),
  },
  {
    $id: 'RecoveryCodes',
    examples: [{ recoveryCodes: ['k7qm2x-wd6fhp-r4tn5c-vb3jys', 'a2bc3d-ef4gh5-ij6klm-7nopqr'] }],
  },
)

export const MfaStatus = Type.Object(
  {
    totp: Type.Boolean({ description: 'An authenticator app is enrolled and confirmed.' }),
    recoveryCodesLeft: Type.Integer(),
  },
  { $id: 'MfaStatus', examples: [{ totp: true, recoveryCodesLeft: 10 }] },
)
export type MfaStatus = Static<typeof MfaStatus>

export const ReauthenticateBody = Type.Object(
  {
    password: PresentedPassword,
    code: Type.Optional(MfaCode),
  },
  { additionalProperties: false, examples: [{ password: 'Sturdy-Pebble-Canyon-12', code: '492039' }] },
)
export type ReauthenticateBody = Static<typeof ReauthenticateBody>
