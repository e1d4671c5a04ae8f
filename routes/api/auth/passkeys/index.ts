import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { perAddressLimit } from '../../../../lib/client-key.js'
import { passkeysDisabled } from '../../../../lib/errors.js'
import { passkeysEnabled } from '../../../../lib/webauthn-config.js'
import { SignedIn } from '../../../../schemas/auth.js'
import { IdParams, NoContent, Problem, ProblemSchema, ref, SIGNED_IN } from '../../../../schemas/common.js'
import {
  CreationOptions,
  Passkey,
  PasskeyList,
  PasskeyLoginBody,
  PasskeyLoginOptionsBody,
  RegisterPasskeyBody,
  RenamePasskeyBody,
  RequestOptions,
} from '../../../../schemas/passkeys.js'
import { registerPasskey, registrationOptions } from '../../../../services/passkey-registration.js'
import { loginOptions, loginWithPasskey } from '../../../../services/passkey-sign-in.js'
import { listPasskeys, removePasskey, renamePasskey } from '../../../../services/passkeys.js'

/** Passkeys (WebAuthn Level 3): registration and management for a signed-in user, and sign-in. */

const tags = ['passkeys']
const stepUp =
  'Needs a recent authentication (POST /api/auth/reauthenticate or a passkey sign-in), else 401 `reauthentication-required`.'
const failed =
  'Every failed ceremony (unknown or foreign credential, wrong origin or RP ID, bad signature, ' +
  'replayed or expired challenge, cloned authenticator) answers the same 401 `invalid-passkey`.'
const off = {
  501: ref(ProblemSchema, {
    description: 'Passkeys are off on this service (WEBAUTHN_ORIGINS=none): passkeys-disabled',
  }),
}

const passkeys: FastifyPluginAsyncTypebox = async (app) => {
  const signedIn = { onRequest: [app.authenticate] }
  const recentlySignedIn = { onRequest: [app.authenticate, app.requireRecentAuth] }
  const loginLimit = perAddressLimit(
    app.config.PASSKEY_LOGIN_RATE_LIMIT_MAX,
    app.config.PASSKEY_LOGIN_RATE_LIMIT_WINDOW_MS,
  )
  // Off: every route here answers 501 before anything else (like mail-disabled).
  app.addHook('onRequest', async function passkeysOn() {
    if (!passkeysEnabled(app.config)) throw passkeysDisabled()
  })

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
      return registrationOptions(app.serviceContext(request), request.requirePrincipal())
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
        description: `\`name\` defaults to "Passkey". At most 20 passkeys per account (409). ${failed} ${stepUp}`,
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
      return reply.code(201).send(await registerPasskey(ctx, request.requirePrincipal(), request.body))
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
      return { items: await listPasskeys(app.serviceContext(request), request.requirePrincipal().userId) }
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
      const { userId } = request.requirePrincipal()
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
      await removePasskey(app.serviceContext(request), request.requirePrincipal().userId, request.params.id)
      return reply.code(204).send()
    },
  )

  app.post(
    '/login/options',
    {
      config: loginLimit,
      schema: {
        tags,
        operationId: 'passkeyLoginOptions',
        summary: 'Start a passkey sign-in: options for navigator.credentials.get()',
        description:
          'Send `{}` for a discoverable sign-in (the browser offers the passkeys it has), or a `username` ' +
          'so only that account may answer. The answer is the same whether the account exists or not. ' +
          'The challenge is single-use and lives 5 minutes.',
        security: [],
        body: PasskeyLoginOptionsBody,
        response: { 200: RequestOptions, 400: Problem, ...off },
      },
    },
    async function signInOptions(request) {
      return loginOptions(app.serviceContext(request), request.body)
    },
  )

  app.post(
    '/login',
    {
      config: loginLimit,
      schema: {
        tags,
        operationId: 'loginWithPasskey',
        summary: 'Sign in with what navigator.credentials.get() answered',
        description:
          'Answers like a password sign-in (body and cookies); the session counts as two-factor ' +
          `(amr \`hwk\` or \`swk\` with \`mfa\`) and as a recent authentication. ${failed} A disabled ` +
          'account is 403 `account-disabled`, an unverified address 403 `email-not-verified` ' +
          '(REQUIRE_VERIFIED_EMAIL), both only after a valid assertion.',
        security: [],
        body: PasskeyLoginBody,
        response: {
          200: ref(SignedIn, { description: 'Signed in: the access token (also in a cookie) and the user' }),
          400: Problem,
          401: Problem,
          403: Problem,
          ...off,
        },
      },
    },
    async function login(request, reply) {
      const result = await loginWithPasskey(app.serviceContext(request), request.body)
      const { refreshToken, refreshExpiresIn, deviceCookie, ...body } = result
      reply.setAuthCookies(result)
      return { ...body, tokenType: 'Bearer' as const }
    },
  )
}

export default passkeys
