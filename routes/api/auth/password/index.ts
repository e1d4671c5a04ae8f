import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { perAddressLimit } from '../../../../lib/client-key.js'
import { NoContent, Problem } from '../../../../schemas/common.js'
import {
  ForgotPasswordBody,
  RESET_REQUESTED,
  ResetRequested,
  resetPasswordBody,
} from '../../../../schemas/password-reset.js'
import { assertMailEnabled } from '../../../../services/mail.js'
import { requestPasswordReset, resetPassword } from '../../../../services/password-reset.js'

/** Password reset by mail: ask for a link, then set a new password with it. */

const tags = ['auth']
const mailOff = 'With MAIL_DISABLED=true the flow is off: 501 `mail-disabled`.'

const password: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app
  const mailLimit = perAddressLimit(config.MAIL_RATE_LIMIT_MAX, config.MAIL_RATE_LIMIT_WINDOW_MS)
  const tokenLimit = perAddressLimit(config.TOKEN_RATE_LIMIT_MAX, config.TOKEN_RATE_LIMIT_WINDOW_MS)

  app.post(
    '/forgot',
    {
      config: mailLimit,
      schema: {
        tags,
        operationId: 'forgotPassword',
        summary: 'Ask for a password-reset link by mail',
        description:
          'Always 202 with the same small body, at once, whether or not the address has an account: the ' +
          'answer tells nothing about it. An enabled account with this address gets a mail with a ' +
          'single-use link (`#token=…`) valid for PASSWORD_RESET_TTL_SECONDS; asking again kills the ' +
          `earlier link. Limited per client address and, silently, per account. ${mailOff}`,
        security: [],
        body: ForgotPasswordBody,
        response: {
          202: ResetRequested,
          400: Problem,
          403: Problem,
          429: Problem,
          501: Problem,
        },
      },
    },
    async function forgotPassword(request, reply) {
      assertMailEnabled(config)
      // The lookup, the token and the mail run after the answer, so its time says nothing about the
      // address (OWASP ASVS 5.0 6.3.8); the request's deadline bounds the answer, not this work.
      const ctx = { ...app.serviceContext(request), sql: app.sql }
      const { email } = request.body
      app.backgroundTasks.run('auth.password.reset_request', () => requestPasswordReset(ctx, email))
      return reply.code(202).send(RESET_REQUESTED)
    },
  )

  app.post(
    '/reset',
    {
      config: tokenLimit,
      schema: {
        tags,
        operationId: 'resetPassword',
        summary: 'Set a new password with the link from the mail',
        description:
          'Send the token of the link and the new password (the rules of registration). When the ' +
          'account has two-factor authentication, also a current code or a recovery code as `code` ' +
          '(401 `invalid-mfa-code` when missing or wrong; the link dies after 5 wrong codes). An ' +
          'unknown, expired or used link is 400 `invalid-email-token`; a refused password leaves the ' +
          'link usable. On success every session of the account ends, the auth cookies are cleared, ' +
          `the address counts as verified and a notice is mailed. ${mailOff}`,
        security: [],
        body: resetPasswordBody(config.PASSWORD_MIN_LENGTH),
        response: {
          204: NoContent('The password is set; every session has ended'),
          400: Problem,
          401: Problem,
          403: Problem,
          429: Problem,
          501: Problem,
        },
      },
    },
    async function resetPasswordWithLink(request, reply) {
      assertMailEnabled(config)
      await resetPassword(app.serviceContext(request), request.body)
      return reply.clearAuthCookies().code(204).send()
    },
  )
}

export default password
