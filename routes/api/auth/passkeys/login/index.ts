import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { perAddressLimit } from '../../../../../lib/client-key.js'
import { SignedIn } from '../../../../../schemas/auth.js'
import { Problem, ref } from '../../../../../schemas/common.js'
import {
  CEREMONY_FAILED,
  passkeysOff as off,
  PasskeyLoginBody,
  PasskeyLoginOptionsBody,
} from '../../../../../schemas/passkeys.js'
import { RequestOptions } from '../../../../../schemas/webauthn.js'
import { loginOptions, loginWithPasskey } from '../../../../../services/passkey-sign-in.js'

/** Signing in with a passkey: request options, then the assertion (WebAuthn L3 §7.2). */

const tags = ['passkeys']

const passkeyLogin: FastifyPluginAsyncTypebox = async (app) => {
  // Per address, like registration and refresh: each options call stores a challenge row.
  const loginLimit = perAddressLimit(
    app.config.PASSKEY_LOGIN_RATE_LIMIT_MAX,
    app.config.PASSKEY_LOGIN_RATE_LIMIT_WINDOW_MS,
  )

  app.post(
    '/options',
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
    '',
    {
      config: loginLimit,
      schema: {
        tags,
        operationId: 'loginWithPasskey',
        summary: 'Sign in with what navigator.credentials.get() answered',
        description:
          'Answers like a password sign-in (body and cookies); the session counts as two-factor ' +
          `(amr \`hwk\` or \`swk\` with \`mfa\`) and as a recent authentication. ${CEREMONY_FAILED} A disabled ` +
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
      return reply.signedIn(result)
    },
  )
}

export default passkeyLogin
