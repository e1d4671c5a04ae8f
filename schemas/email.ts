import { type Static, Type } from '@sinclair/typebox'
import { Email } from './auth.js'
import { OPAQUE_TOKEN } from './common.js'

/** Schemas of email verification and email change. */

const EXAMPLE_TOKEN = 'Jx7mQ2vN9bK4pR1sT8wY3zA6cD0eF5gH2iL7nO4qU9v'

/** The token of a mailed link (after `#token=`), shape-checked before any database work. */
export const MailedToken = Type.String({
  pattern: OPAQUE_TOKEN,
  description: 'The token after `#token=` in the link of the mail.',
  'x-message': 'must be the token from the link in the mail',
})

export const VerifyEmailBody = Type.Object(
  { token: MailedToken },
  { additionalProperties: false, examples: [{ token: EXAMPLE_TOKEN }] },
)
export type VerifyEmailBody = Static<typeof VerifyEmailBody>

export const EmailChangeBody = Type.Object(
  { email: Email },
  { additionalProperties: false, examples: [{ email: 'alice.new@example.com' }] },
)
export type EmailChangeBody = Static<typeof EmailChangeBody>

/** The answer when a link is (or, to the requester, may be) on its way: 202. */
export const LinkMailed = Type.Object(
  {
    expiresIn: Type.Integer({
      description: 'Seconds the mailed link works (EMAIL_VERIFICATION_TTL_SECONDS); it works once.',
    }),
  },
  { $id: 'LinkMailed', examples: [{ expiresIn: 86_400 }] },
)
export type LinkMailed = Static<typeof LinkMailed>
