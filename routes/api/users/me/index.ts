import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { perAddressLimit } from '../../../../lib/client-key.js'
import { Problem, ref, SIGNED_IN } from '../../../../schemas/common.js'
import { EmailChangeBody, LinkMailed } from '../../../../schemas/email.js'
import { requestEmailChange } from '../../../../services/email-change.js'

/** Your own account's email address (the prefix is /api/users/me). */

const tags = ['users']

const me: FastifyPluginAsyncTypebox = async (app) => {
  app.put(
    '/email',
    {
      onRequest: [app.authenticate],
      config: perAddressLimit(app.config.MAIL_RATE_LIMIT_MAX, app.config.MAIL_RATE_LIMIT_WINDOW_MS),
      schema: {
        tags,
        operationId: 'changeEmail',
        summary: 'Change your email address: a link goes to the new address, the change waits for it',
        description:
          'Needs a recent authentication (POST /api/auth/reauthenticate), else 401 ' +
          '`reauthentication-required`. Answers 202 for any other address: the new address gets a link ' +
          '(POST /api/auth/verify-email makes the change and tells the old address), and an address ' +
          'that already has an account gets a notice instead (the answer does not say which). Your ' +
          'current address is 400; 429 when the mail budget is spent; 501 `mail-disabled` while mail is off.',
        security: SIGNED_IN,
        body: EmailChangeBody,
        response: {
          202: ref(LinkMailed, { description: 'A confirmation link is on its way to the new address' }),
          400: Problem,
          401: Problem,
          429: Problem,
          501: Problem,
        },
      },
    },
    async function changeEmail(request, reply) {
      const ctx = app.serviceContext(request)
      return reply.code(202).send(await requestEmailChange(ctx, request.requireSession(), request.body.email))
    },
  )
}

export default me
