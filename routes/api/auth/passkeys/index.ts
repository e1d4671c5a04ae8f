import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { IdParams, NoContent, Problem, ref, SIGNED_IN } from '../../../../schemas/common.js'
import {
  CEREMONY_FAILED,
  passkeysOff as off,
  Passkey,
  PasskeyList,
  RegisterPasskeyBody,
  RenamePasskeyBody,
} from '../../../../schemas/passkeys.js'
import { CreationOptions } from '../../../../schemas/webauthn.js'
import { registerPasskey, registrationOptions } from '../../../../services/passkey-registration.js'
import { listPasskeys, removePasskey, renamePasskey } from '../../../../services/passkeys.js'

/** Passkeys (WebAuthn Level 3) of a signed-in user: register, list, rename, remove. Sign-in: login/. */

const tags = ['passkeys']
const stepUp =
  'Needs a recent authentication (POST /api/auth/reauthenticate or a passkey sign-in), else 401 `reauthentication-required`.'

const passkeys: FastifyPluginAsyncTypebox = async (app) => {
  const signedIn = { onRequest: [app.authenticate] }
  const recentlySignedIn = { onRequest: [app.authenticate, app.requireRecentAuth] }

  app.post(
    '/register/options',
    {
      ...recentlySignedIn,
      schema: {
        tags,
        operationId: 'passkeyRegistrationOptions',
        summary: 'Start registering a passkey: options for navigator.credentials.create()',
        description: `The challenge is single-use and lives 5 minutes. ${stepUp}`,
        security: SIGNED_IN,
        response: { 200: CreationOptions, 401: Problem, 409: Problem, ...off },
      },
    },
    async function registerOptions(request) {
      return registrationOptions(app.serviceContext(request), request.requireSession())
    },
  )

  app.post(
    '/register',
    {
      ...recentlySignedIn,
      schema: {
        tags,
        operationId: 'registerPasskey',
        summary: 'Finish registering a passkey with what navigator.credentials.create() answered',
        description: `\`name\` defaults to "Passkey". At most 20 passkeys per account (409). ${CEREMONY_FAILED} ${stepUp}`,
        security: SIGNED_IN,
        body: RegisterPasskeyBody,
        response: {
          201: ref(Passkey, { description: 'The passkey was registered' }),
          400: Problem,
          401: Problem,
          409: Problem,
          ...off,
        },
      },
    },
    async function register(request, reply) {
      const ctx = app.serviceContext(request)
      return reply.code(201).send(await registerPasskey(ctx, request.requireSession(), request.body))
    },
  )

  app.get(
    '',
    {
      ...signedIn,
      schema: {
        tags,
        operationId: 'listPasskeys',
        summary: 'Your passkeys',
        security: SIGNED_IN,
        response: { 200: ref(PasskeyList, { description: 'Your passkeys' }), 401: Problem, ...off },
      },
    },
    async function list(request) {
      return { items: await listPasskeys(app.serviceContext(request), request.requireSession().userId) }
    },
  )

  app.patch(
    '/:id',
    {
      ...signedIn,
      schema: {
        tags,
        operationId: 'renamePasskey',
        summary: 'Rename one of your passkeys',
        security: SIGNED_IN,
        params: IdParams,
        body: RenamePasskeyBody,
        response: {
          200: ref(Passkey, { description: 'Renamed' }),
          400: Problem,
          401: Problem,
          404: Problem,
          ...off,
        },
      },
    },
    async function rename(request) {
      const { userId } = request.requireSession()
      return renamePasskey(app.serviceContext(request), userId, request.params.id, request.body.name)
    },
  )

  app.delete(
    '/:id',
    {
      ...recentlySignedIn,
      schema: {
        tags,
        operationId: 'removePasskey',
        summary: 'Remove one of your passkeys',
        description: stepUp,
        security: SIGNED_IN,
        params: IdParams,
        response: { 204: NoContent('Removed'), 401: Problem, 404: Problem, ...off },
      },
    },
    async function remove(request, reply) {
      await removePasskey(app.serviceContext(request), request.requireSession().userId, request.params.id)
      return reply.code(204).send()
    },
  )
}

export default passkeys
