import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { SignedIn } from '../../../../schemas/auth.js'
import { NoContent, Problem, ref, SIGNED_IN } from '../../../../schemas/common.js'
import {
  MfaStatus,
  MfaVerifyBody,
  RecoveryCodes,
  TotpConfirmBody,
  TotpEnrolment,
} from '../../../../schemas/mfa.js'
import * as secondFactor from '../../../../services/second-factor.js'
import { verifyMfa } from '../../../../services/sign-in.js'

/** Two-factor authentication: the sign-in's second step, and the TOTP authenticator and recovery codes. */

const tags = ['mfa']
const stepUp =
  'Needs a recent authentication (POST /api/auth/reauthenticate), else 401 `reauthentication-required`.'

const mfa: FastifyPluginAsyncTypebox = async (app) => {
  const signedIn = { onRequest: [app.authenticate] }
  const recentlySignedIn = { onRequest: [app.authenticate, app.requireRecentAuth] }

  app.post(
    '/verify',
    {
      schema: {
        tags,
        operationId: 'verifyMfa',
        summary: 'Complete a sign-in with a TOTP or recovery code',
        description:
          'Send the `mfaToken` that POST /api/auth/login answered and a code. Answers exactly like a ' +
          'password-only login. The mfaToken lives 5 minutes, completes one sign-in, and dies after 5 wrong codes.',
        security: [],
        body: MfaVerifyBody,
        response: {
          200: ref(SignedIn, { description: 'Signed in: the access token (also in a cookie) and the user' }),
          400: Problem,
          401: Problem,
          429: Problem,
        },
      },
    },
    async function verify(request, reply) {
      const result = await verifyMfa(app.serviceContext(request), request.body)
      return reply.signedIn(result)
    },
  )

  app.get(
    '',
    {
      ...signedIn,
      schema: {
        tags,
        operationId: 'getMfaStatus',
        summary: 'Your second factors',
        security: SIGNED_IN,
        response: { 200: ref(MfaStatus, { description: 'Your second factors' }), 401: Problem },
      },
    },
    async function status(request) {
      return secondFactor.mfaStatus(app.serviceContext(request), request.requireSession().userId)
    },
  )

  app.post(
    '/totp',
    {
      ...recentlySignedIn,
      schema: {
        tags,
        operationId: 'startTotpEnrolment',
        summary: 'Start enrolling an authenticator app',
        description: `Answers a new secret, its otpauth:// URI and a QR code; confirm with a code within 10 minutes. ${stepUp}`,
        security: SIGNED_IN,
        response: {
          201: ref(TotpEnrolment, {
            description: 'The secret to enrol; unconfirmed until POST /totp/confirm',
          }),
          401: Problem,
          409: Problem,
        },
      },
    },
    async function enrol(request, reply) {
      const ctx = app.serviceContext(request)
      const enrolment = await secondFactor.startTotpEnrolment(ctx, request.requireSession())
      return reply.code(201).header('cache-control', 'no-store').send(enrolment)
    },
  )

  app.post(
    '/totp/confirm',
    {
      ...signedIn,
      schema: {
        tags,
        operationId: 'confirmTotpEnrolment',
        summary: 'Activate the authenticator with a current code; answers ten recovery codes, once',
        security: SIGNED_IN,
        body: TotpConfirmBody,
        response: {
          200: ref(RecoveryCodes, {
            description: 'Two-factor authentication is on; the recovery codes, shown once',
          }),
          400: Problem,
          401: Problem,
          409: Problem,
        },
      },
    },
    async function confirm(request, reply) {
      const ctx = app.serviceContext(request)
      const principal = request.requireSession()
      const recoveryCodes = await secondFactor.confirmTotpEnrolment(ctx, principal, request.body.code)
      return reply.header('cache-control', 'no-store').send({ recoveryCodes })
    },
  )

  app.delete(
    '/totp',
    {
      ...recentlySignedIn,
      schema: {
        tags,
        operationId: 'removeTotp',
        summary: 'Turn two-factor authentication off',
        description: `Removes the authenticator and the recovery codes. ${stepUp}`,
        security: SIGNED_IN,
        response: { 204: NoContent('Two-factor authentication is off'), 401: Problem, 404: Problem },
      },
    },
    async function remove(request, reply) {
      await secondFactor.removeTotp(app.serviceContext(request), request.requireSession())
      return reply.code(204).send()
    },
  )

  app.post(
    '/recovery-codes',
    {
      ...recentlySignedIn,
      schema: {
        tags,
        operationId: 'replaceRecoveryCodes',
        summary: 'Replace the recovery codes; answers ten new ones, once',
        description: `The old codes stop working. ${stepUp}`,
        security: SIGNED_IN,
        response: {
          200: ref(RecoveryCodes, { description: 'The new recovery codes, shown once' }),
          401: Problem,
          409: Problem,
        },
      },
    },
    async function replaceCodes(request, reply) {
      const ctx = app.serviceContext(request)
      const recoveryCodes = await secondFactor.replaceRecoveryCodes(ctx, request.requireSession())
      return reply.header('cache-control', 'no-store').send({ recoveryCodes })
    },
  )
}

export default mfa
