import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ApiKeyList, ApiKeyParams, CreatedApiKey, createApiKeyBody } from '../../../../schemas/api-keys.js'
import { NoContent, Problem, SIGNED_IN } from '../../../../schemas/common.js'
import * as apiKeys from '../../../../services/api-keys.js'

/** Key management: create, list and revoke your API keys. A session only: no key reaches these routes. */

const tags = ['api-keys']
const stepUp =
  'Needs a recent authentication (POST /api/auth/reauthenticate), else 401 `reauthentication-required`. ' +
  'An API key is refused (403 `api-key-not-allowed`).'

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const requireAdmin = app.authorize('admin')
  const requireUser = app.authorize('user')

  app.post(
    '',
    {
      onRequest: [app.authenticate, app.requireRecentAuth],
      schema: {
        tags,
        operationId: 'createApiKey',
        summary: 'Create an API key (shown once)',
        description:
          `The key is in the answer once, never again: only a hash is stored. ${stepUp} The \`admin\` scope ` +
          'needs an admin; any key, a session that meets MFA_REQUIRED_ROLES (403 `forbidden` / `mfa-required`). ' +
          'More than API_KEYS_MAX_PER_USER live keys is 409.',
        security: SIGNED_IN,
        body: createApiKeyBody(app.config.API_KEY_MAX_EXPIRES_DAYS),
        response: {
          201: { ...CreatedApiKey, description: 'The new key, shown this once' },
          400: Problem,
          401: Problem,
          403: Problem,
          409: Problem,
        },
      },
    },
    async function createKey(request, reply) {
      // The admin scope needs the admin role; and every key, the MFA rule of its creator's role, or a
      // key would act for a session that may not act itself (ASVS 5.0 6.3.3).
      await (request.body.scopes.includes('admin') ? requireAdmin : requireUser)(request)
      const key = await apiKeys.createApiKey(
        app.serviceContext(request),
        request.requireSession(),
        request.body,
      )
      return reply.code(201).header('cache-control', 'no-store').send(key)
    },
  )

  app.get(
    '',
    {
      onRequest: [app.authenticate],
      schema: {
        tags,
        operationId: 'listApiKeys',
        summary: 'Your live API keys (never their secrets)',
        description: '`lastUsedAt` is written in batches: up to API_KEY_LAST_USED_FLUSH_MS behind.',
        security: SIGNED_IN,
        response: { 200: { ...ApiKeyList, description: 'Your live keys' }, 401: Problem, 403: Problem },
      },
    },
    async function listKeys(request) {
      return {
        items: await apiKeys.listApiKeys(app.serviceContext(request), request.requireSession().userId),
      }
    },
  )

  app.delete(
    '/:id',
    {
      onRequest: [app.authenticate, app.requireRecentAuth],
      schema: {
        tags,
        operationId: 'revokeApiKey',
        summary: 'Revoke an API key at once',
        description: `The next request with the key is refused. Another user's key is 404. ${stepUp}`,
        security: SIGNED_IN,
        params: ApiKeyParams,
        response: { 204: NoContent('Revoked'), 400: Problem, 401: Problem, 403: Problem, 404: Problem },
      },
    },
    async function revokeKey(request, reply) {
      const ctx = app.serviceContext(request)
      await apiKeys.revokeApiKey(ctx, request.requireSession(), request.params.id)
      return reply.code(204).send()
    },
  )
}

export default routes
