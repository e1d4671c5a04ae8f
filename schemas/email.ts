import { type Static, Type } from '@sinclair/typebox'
import { Email } from './auth.js'

/** Schemas of email verification and email change. */

const EXAMPLE_TOKEN = 'Jx7mQ2vN9bK4pR1sT8wY3zA6cD0eF5gH2iL7nO4qU9v'

/**
 * The token of a mailed link, shape-checked before any database work. The pattern is passed in by
 * the route from services/opaque-tokens.ts, which makes these tokens: one definition of the shape.
 */
export const verifyEmailBody = (tokenPattern: RegExp) =>
  Type.Object(
    {
      token: Type.String({
        pattern: tokenPattern.source,
        description: 'The token after `#token=` in the link of the mail.',
        'x-message': 'must be the token from the link in the mail',
      }),
    },
    { additionalProperties: false, examples: [{ token: EXAMPLE_TOKEN }] },
  )
export type VerifyEmailBody = Static<ReturnType<typeof verifyEmailBody>>

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
