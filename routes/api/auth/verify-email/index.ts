import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { perAddressLimit } from '../../../../lib/client-key.js'
import { NoContent, Problem, ref, SIGNED_IN } from '../../../../schemas/common.js'
import { LinkMailed, VerifyEmailBody } from '../../../../schemas/email.js'
import { resendVerification, verifyEmail } from '../../../../services/email-verification.js'

/** Email verification: following the mailed link (also an email change's), and asking for a new one. */

const tags = ['auth']
const mailOff = 'Answers 501 `mail-disabled` while mail is disabled (MAIL_DISABLED=true).'

const verification: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app

  app.post(
    '',
    {
      config: perAddressLimit(config.TOKEN_RATE_LIMIT_MAX, config.TOKEN_RATE_LIMIT_WINDOW_MS),
      schema: {
        tags,
        operationId: 'verifyEmail',
        summary: 'Confirm an email address with the token of a mailed link',
        description:
          'The token of a verification mail (registration, resend, a sign-in refused for an unverified ' +
          'address) marks the address verified; the token of an email-change mail makes the new address ' +
          "the account's and tells the old one. A token works once. An unknown, expired, used or other " +
          `token is 400 \`invalid-email-token\`, all alike. ${mailOff}`,
        security: [],
        body: VerifyEmailBody,
        response: {
          204: NoContent('The address is verified (or, for an email change, is now the account’s)'),
          400: Problem,
          409: Problem,
          429: Problem,
          501: Problem,
        },
      },
    },
    async function verify(request, reply) {
      await verifyEmail(app.serviceContext(request), request.body.token)
      return reply.code(204).send()
    },
  )

  app.post(
    '/resend',
    {
      onRequest: [app.authenticate],
      config: perAddressLimit(config.MAIL_RATE_LIMIT_MAX, config.MAIL_RATE_LIMIT_WINDOW_MS),
      schema: {
        tags,
        operationId: 'resendVerificationEmail',
        summary: 'Mail a new verification link to your address',
        description:
          'Earlier links stop working. 409 when the address is already verified; 429 when the ' +
          `account's mail budget (MAIL_RATE_LIMIT_MAX per MAIL_RATE_LIMIT_WINDOW_MS) is spent. ${mailOff}`,
        security: SIGNED_IN,
        response: {
          202: ref(LinkMailed, { description: 'A new link is on its way' }),
          401: Problem,
          409: Problem,
          429: Problem,
          501: Problem,
        },
      },
    },
    async function resend(request, reply) {
      const sent = await resendVerification(app.serviceContext(request), request.requireSession())
      return reply.code(202).send(sent)
    },
  )
}

export default verification
