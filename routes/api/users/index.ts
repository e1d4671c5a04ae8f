import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { orApiKey } from '../../../schemas/api-keys.js'
import { passwordChangeBody, UserEnvelope } from '../../../schemas/auth.js'
import { NoContent, Problem, ref, SIGNED_IN } from '../../../schemas/common.js'
import { Profile, UsernameParams } from '../../../schemas/users.js'
import { changePassword, getCurrentUser, getProfile } from '../../../services/users.js'

/** Accounts: your own account and password, and profiles. */

const tags = ['users']

const users: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/me',
    {
      onRequest: [app.authenticate],
      config: { apiKeyScope: 'profile:read' },
      schema: {
        tags,
        operationId: 'getCurrentUser',
        summary: 'Your account',
        security: orApiKey('profile:read', SIGNED_IN),
        response: { 200: ref(UserEnvelope, { description: 'Your account' }), 401: Problem },
      },
    },
    async function me(request) {
      return { user: getCurrentUser(app.serviceContext(request), request.requirePrincipal()) }
    },
  )

  app.put(
    '/me/password',
    {
      onRequest: [app.authenticate],
      schema: {
        tags,
        operationId: 'changePassword',
        summary: 'Change your password (ends your other sessions)',
        security: SIGNED_IN,
        description: 'The rules of `newPassword` are in its schema.',
        body: passwordChangeBody(app.config.PASSWORD_MIN_LENGTH),
        response: {
          204: NoContent('Changed; your other sessions are ended'),
          400: Problem,
          401: Problem,
          403: Problem,
        },
      },
    },
    async function updatePassword(request, reply) {
      await changePassword(app.serviceContext(request), request.requireSession(), request.body)
      return reply.code(204).send()
    },
  )

  app.get(
    '/:username',
    {
      onRequest: [app.authenticate, app.authorize('user')],
      config: { apiKeyScope: 'profile:read' },
      schema: {
        tags,
        operationId: 'getProfile',
        summary: "A user's profile (email only for yourself or admins)",
        security: orApiKey('profile:read', SIGNED_IN),
        params: UsernameParams,
        response: {
          200: ref(Profile, { description: 'The profile' }),
          400: Problem,
          401: Problem,
          403: Problem,
          404: Problem,
        },
      },
    },
    async function profile(request) {
      return getProfile(app.serviceContext(request), request.requirePrincipal(), request.params.username)
    },
  )
}

export default users
