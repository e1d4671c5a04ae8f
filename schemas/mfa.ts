import { type Static, Type } from '@sinclair/typebox'
import { PresentedPassword } from './auth.js'

/** Schemas of two-factor authentication (TOTP, recovery codes) and of re-authentication. */

/** The opaque challenge token of a sign-in's second step: 32 bytes, base64url. */
const MfaToken = Type.String({
  pattern: '^[A-Za-z0-9_-]{43}$',
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
  { additionalProperties: false },
)
export type MfaVerifyBody = Static<typeof MfaVerifyBody>

export const TotpCode = Type.String({ pattern: '^[0-9]{6}$', 'x-message': 'must be the 6-digit code' })
export const TotpConfirmBody = Type.Object({ code: TotpCode }, { additionalProperties: false })

export const TotpEnrolment = Type.Object({
  secret: Type.String({ description: 'Base32, for apps that take it typed in.' }),
  otpauthUri: Type.String({ description: 'The otpauth://totp/ URI the QR code holds.' }),
  qrCode: Type.String({ description: 'An SVG data URL of the QR code, for an <img src>.' }),
})
export type TotpEnrolment = Static<typeof TotpEnrolment>

export const RecoveryCodes = Type.Object({
  recoveryCodes: Type.Array(Type.String(), {
    description: 'Ten single-use codes, shown once: each signs in once in place of a TOTP code.',
  }),
})

export const MfaStatus = Type.Object({
  totp: Type.Boolean({ description: 'An authenticator app is enrolled and confirmed.' }),
  recoveryCodesLeft: Type.Integer(),
})
export type MfaStatus = Static<typeof MfaStatus>

export const ReauthenticateBody = Type.Object(
  {
    password: PresentedPassword,
    code: Type.Optional(MfaCode),
  },
  { additionalProperties: false },
)
export type ReauthenticateBody = Static<typeof ReauthenticateBody>
