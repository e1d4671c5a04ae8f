import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { perAddressLimit } from '../../../lib/client-key.js'
import { isProblem } from '../../../lib/errors.js'
import {
  LoginBody,
  LoginResponse,
  registerBody,
  SessionList,
  SessionParams,
  TokenResponse,
  UserEnvelope,
} from '../../../schemas/auth.js'
import { NoContent, Problem, ref, SIGNED_IN } from '../../../schemas/common.js'
import { ReauthenticateBody } from '../../../schemas/mfa.js'
import * as sessions from '../../../services/sessions.js'
import * as signIn from '../../../services/sign-in.js'
import * as stepUp from '../../../services/step-up.js'
import { createUser } from '../../../services/users.js'

/** Authentication endpoints: register, login, refresh, logout, sessions. */

const tags = ['auth']
const problems = { 400: Problem, 401: Problem, 403: Problem, 409: Problem }

const auth: FastifyPluginAsyncTypebox = async (app) => {
  const bearer = { onRequest: [app.authenticate] }
  const registerLimit = perAddressLimit(
    app.config.REGISTER_RATE_LIMIT_MAX,
    app.config.REGISTER_RATE_LIMIT_WINDOW_MS,
  )
  const refreshLimit = perAddressLimit(
    app.config.REFRESH_RATE_LIMIT_MAX,
    app.config.REFRESH_RATE_LIMIT_WINDOW_MS,
  )

  app.post(
    '/register',
    {
      config: registerLimit,
      schema: {
        tags,
        operationId: 'register',
        summary: 'Create an account',
        security: [],
        description:
          'The password rules are in the schema of `password`. A link to confirm the address is mailed ' +
          'to it (POST /api/auth/verify-email). An address that already has an account gets the same ' +
          '201, with a user of the same shape that was not created, and its owner a notice instead: the ' +
          'answer never tells whether an address is registered. A taken username is 409 (usernames are public).',
        body: registerBody(app.config.PASSWORD_MIN_LENGTH),
        response: { 201: ref(UserEnvelope, { description: 'The account was created' }), ...problems },
      },
    },
    async function register(request, reply) {
      const ctx = app.serviceContext(request)
      const user = await createUser(ctx, request.body)
      return reply.code(201).send({ user })
    },
  )

  app.post(
    '/login',
    {
      schema: {
        tags,
        operationId: 'login',
        summary: 'Sign in: access token in the body and cookies',
        description:
          'A wrong password and an unknown user get the same 401. With REQUIRE_VERIFIED_EMAIL=true, an ' +
          'account whose address is not verified gets 403 `email-not-verified` after a correct password, ' +
          'and a new confirmation link is mailed to it.',
        security: [],
        body: LoginBody,
        response: { 200: LoginResponse, ...problems },
      },
    },
    async function login(request, reply) {
      const result = await signIn.login(app.serviceContext(request), request.body)
      // The password step of a two-factor account: a token for POST /mfa/verify, and no cookie yet.
      if ('mfaRequired' in result) return reply.header('cache-control', 'no-store').send(result)
      return reply.signedIn(result)
    },
  )

  app.post(
    '/reauthenticate',
    {
      onRequest: [app.authenticate],
      schema: {
        tags,
        operationId: 'reauthenticate',
        summary: "Prove it is you again (step-up): renews the session's authentication time",
        description:
          'Sensitive actions (two-factor changes) answer 401 `reauthentication-required` when the ' +
          "session's last authentication is older than REAUTH_MAX_AGE_SECONDS. Send the password, and a " +
          'code when two-factor authentication is on. Answers a new access token carrying `auth_time` and `amr`.',
        security: SIGNED_IN,
        body: ReauthenticateBody,
        response: {
          200: ref(TokenResponse, { description: 'A new access token (also in a cookie)' }),
          400: Problem,
          401: Problem,
          403: Problem,
          429: Problem,
        },
      },
    },
    async function reauthenticate(request, reply) {
      const ctx = app.serviceContext(request)
      const tokens = await stepUp.reauthenticate(ctx, request.requireSession(), request.body)
      reply.setAuthCookies(tokens)
      return { accessToken: tokens.accessToken, tokenType: 'Bearer' as const, expiresIn: tokens.expiresIn }
    },
  )

  app.post(
    '/refresh',
    {
      config: refreshLimit,
      schema: {
        tags,
        operationId: 'refreshAccessToken',
        summary: 'Rotate the refresh cookie for a new access token',
        security: [{ refreshCookie: [] }],
        response: {
          200: ref(TokenResponse, { description: 'A new access token; the refresh cookie is rotated' }),
          401: Problem,
          403: Problem,
        },
      },
    },
    async function refresh(request, reply) {
      try {
        const tokens = await sessions.refresh(app.serviceContext(request), request.refreshCookie())
        // Rotation is the one outcome not audited (grace and reuse are: lib/metrics-events.ts).
        if (tokens.refreshToken) app.metrics?.refreshRotated()
        reply.setAuthCookies(tokens)
        return { accessToken: tokens.accessToken, tokenType: 'Bearer' as const, expiresIn: tokens.expiresIn }
      } catch (error) {
        // A rejected refresh ends the browser's session: both cookies go (RFC 9700 §4.14.2).
        if (isProblem(error, 'invalid-refresh-token')) reply.clearAuthCookies()
        throw error
      }
    },
  )

  app.post(
    '/logout',
    {
      schema: {
        tags,
        operationId: 'logout',
        summary: 'End this session and clear both cookies',
        security: [{ refreshCookie: [] }, ...SIGNED_IN, {}],
        response: { 204: NoContent('Signed out (also when there was no session)'), 403: Problem },
      },
    },
    async function logout(request, reply) {
      // Idempotent: a bad or missing access token still logs out by the refresh cookie, or not at all.
      await sessions.logout(app.serviceContext(request), {
        principal: await app.optionalPrincipal(request),
        refreshToken: request.refreshCookie(),
      })
      return reply.clearAuthCookies().code(204).send()
    },
  )

  app.post(
    '/logout-all',
    {
      ...bearer,
      schema: {
        tags,
        operationId: 'logoutAll',
        summary: 'End every session of the user',
        security: SIGNED_IN,
        response: { 204: NoContent('Every session is ended'), 401: Problem },
      },
    },
    async function logoutAll(request, reply) {
      await sessions.logoutAll(app.serviceContext(request), request.requireSession().userId)
      return reply.clearAuthCookies().code(204).send()
    },
  )

  app.get(
    '/sessions',
    {
      ...bearer,
      schema: {
        tags,
        operationId: 'listSessions',
        summary: "List the user's live sessions",
        security: SIGNED_IN,
        response: { 200: ref(SessionList, { description: 'Your live sessions' }), 401: Problem },
      },
    },
    async function listSessions(request) {
      return { items: await sessions.listSessions(app.serviceContext(request), request.requireSession()) }
    },
  )

  app.delete(
    '/sessions/:id',
    {
      ...bearer,
      schema: {
        tags,
        operationId: 'revokeSession',
        summary: 'Revoke one of your sessions',
        security: SIGNED_IN,
        params: SessionParams,
        response: { 204: NoContent('Revoked'), 401: Problem, 404: Problem },
      },
    },
    async function revokeSession(request, reply) {
      await sessions.revokeSession(
        app.serviceContext(request),
        request.requireSession().userId,
        request.params.id,
      )
      return reply.code(204).send()
    },
  )
}

export default auth
