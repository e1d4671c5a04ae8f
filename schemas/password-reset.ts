import { type Static, Type } from '@sinclair/typebox'
import { Email, newPassword } from './auth.js'
import { MailedToken } from './email.js'
import { MfaCode } from './mfa.js'

/** Schemas of the password reset: asking for a link, and using it. */

export const ForgotPasswordBody = Type.Object(
  { email: Email },
  { additionalProperties: false, examples: [{ email: 'alice@example.com' }] },
)
export type ForgotPasswordBody = Static<typeof ForgotPasswordBody>

/** The one answer to every request for a link, whatever the address (OWASP ASVS 5.0 6.3.8). */
export const RESET_REQUESTED = {
  message: 'If an account has this address, a mail with a reset link is on its way to it.',
} as const
export const ResetRequested = Type.Object(
  { message: Type.String() },
  {
    additionalProperties: false,
    description: 'Accepted: the same answer whether or not an account has the address',
    examples: [RESET_REQUESTED],
  },
)

export const resetPasswordBody = (minLength: number) =>
  Type.Object(
    {
      token: MailedToken,
      newPassword: newPassword(minLength),
      /** Required when the account has two-factor authentication (see the route's description). */
      code: Type.Optional(MfaCode),
    },
    {
      additionalProperties: false,
      examples: [
        { token: 'Zq8Xv3Lr0Nw6Tb1Yc9Ke5Hd2Ua7Sf4Gj0Pm8Ri3Bo6w', newPassword: 'Quiet-Marble-Orchard-36' },
      ],
    },
  )
export type ResetPasswordBody = Static<ReturnType<typeof resetPasswordBody>>
