import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import {
  LoginBody,
  LoginResponse,
  RegisterBody,
  SessionList,
  SessionParams,
  TokenResponse,
  UserEnvelope,
} from '../../../schemas/auth.js'
import { ProblemSchema } from '../../../schemas/common.js'
import * as sessions from '../../../services/sessions.js'
import { createUser } from '../../../services/users.js'

const problems = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 409: ProblemSchema }

const auth: FastifyPluginAsyncTypebox = async (app) => {
  const bearer = { onRequest: [app.authenticate] }

  app.post(
    '/register',
    { schema: { body: RegisterBody, response: { 201: UserEnvelope, ...problems } } },
    async function register(request, reply) {
      const ctx = app.authContext(request)
      const user = await createUser(ctx, request.body)
      return reply.code(201).send({ user })
    },
  )

  app.post(
    '/login',
    { schema: { body: LoginBody, response: { 200: LoginResponse, ...problems } } },
    async function login(request, reply) {
      const { refreshToken, ...result } = await sessions.login(app.authContext(request), request.body)
      reply.setAuthCookies({ accessToken: result.accessToken, refreshToken })
      return { ...result, tokenType: 'Bearer' as const }
    },
  )

  app.post(
    '/refresh',
    { schema: { response: { 200: TokenResponse, 401: ProblemSchema, 403: ProblemSchema } } },
    async function refresh(request, reply) {
      try {
        const tokens = await sessions.refresh(
          app.authContext(request),
          request.cookies[app.authCookies.refresh],
        )
        reply.setAuthCookies(tokens)
        return { accessToken: tokens.accessToken, tokenType: 'Bearer' as const, expiresIn: tokens.expiresIn }
      } catch (error) {
        // A rejected refresh ends the browser's session: both cookies go (RFC 9700 §4.14.2).
        if (error instanceof sessions.RefreshRejected) reply.clearAuthCookies()
        throw error
      }
    },
  )

  app.post(
    '/logout',
    { schema: { response: { 204: { type: 'null' }, 403: ProblemSchema } } },
    async function logout(request, reply) {
      // Idempotent: a bad or missing access token still logs out by the refresh cookie, or not at all.
      const principal =
        request.headers.authorization || request.cookies[app.authCookies.access]
          ? await app.authenticate(request, reply).then(
              () => request.principal,
              () => null,
            )
          : null
      await sessions.logout(app.authContext(request), {
        principal,
        refreshToken: request.cookies[app.authCookies.refresh],
      })
      return reply.clearAuthCookies().code(204).send()
    },
  )

  app.post(
    '/logout-all',
    { ...bearer, schema: { response: { 204: { type: 'null' }, 401: ProblemSchema } } },
    async function logoutAll(request, reply) {
      await sessions.logoutAll(app.authContext(request), request.requirePrincipal().userId)
      return reply.clearAuthCookies().code(204).send()
    },
  )

  app.get(
    '/sessions',
    { ...bearer, schema: { response: { 200: SessionList, 401: ProblemSchema } } },
    async function listSessions(request) {
      return { items: await sessions.listSessions(app.sql, request.requirePrincipal()) }
    },
  )

  app.delete(
    '/sessions/:id',
    {
      ...bearer,
      schema: {
        params: SessionParams,
        response: { 204: { type: 'null' }, 401: ProblemSchema, 404: ProblemSchema },
      },
    },
    async function revokeSession(request, reply) {
      await sessions.revokeSession(
        app.authContext(request),
        request.requirePrincipal().userId,
        request.params.id,
      )
      return reply.code(204).send()
    },
  )
}

export default auth
