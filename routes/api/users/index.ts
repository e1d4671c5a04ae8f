import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { PasswordChangeBody, UserEnvelope } from '../../../schemas/auth.js'
import { ProblemSchema } from '../../../schemas/common.js'
import { changePassword, getUser } from '../../../services/users.js'

const users: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/me',
    { onRequest: [app.authenticate], schema: { response: { 200: UserEnvelope, 401: ProblemSchema } } },
    async function me(request) {
      return { user: await getUser(app.sql, request.requirePrincipal().userId) }
    },
  )

  app.put(
    '/me/password',
    {
      onRequest: [app.authenticate],
      schema: {
        body: PasswordChangeBody,
        response: { 204: { type: 'null' }, 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema },
      },
    },
    async function updatePassword(request, reply) {
      await changePassword(app.authContext(request), request.requirePrincipal(), request.body)
      return reply.code(204).send()
    },
  )
}

export default users
