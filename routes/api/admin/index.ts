import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import {
  AdminUser,
  AdminUserPage,
  AdminUserPatch,
  AdminUserQuery,
  AuditPage,
  AuditQuery,
} from '../../../schemas/admin.js'
import { IdParams, ProblemSchema, SIGNED_IN } from '../../../schemas/common.js'
import * as admin from '../../../services/admin.js'

/** The admin API: users and the audit log (guarded by autohooks.ts). */

const tags = ['admin']
const errors = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema }

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/users',
    {
      schema: {
        tags,
        summary: 'List users',
        security: SIGNED_IN,
        querystring: AdminUserQuery,
        response: { 200: AdminUserPage, ...errors },
      },
    },
    async function listUsers(request) {
      return admin.listUsers(app.serviceContext(request), request.requirePrincipal().userId, request.query)
    },
  )

  app.patch(
    '/users/:id',
    {
      schema: {
        tags,
        summary: "Change a user's role or disabled flag (revokes their sessions)",
        security: SIGNED_IN,
        params: IdParams,
        body: AdminUserPatch,
        response: { 200: AdminUser, ...errors, 404: ProblemSchema, 409: ProblemSchema },
      },
    },
    async function updateUser(request) {
      const actor = request.requirePrincipal()
      return admin.updateUser(app.serviceContext(request), actor.userId, request.params.id, request.body)
    },
  )

  app.get(
    '/audit-events',
    {
      schema: {
        tags,
        summary: 'Read the audit log',
        security: SIGNED_IN,
        querystring: AuditQuery,
        response: { 200: AuditPage, ...errors },
      },
    },
    async function listAuditEvents(request) {
      return admin.listAudit(app.serviceContext(request), request.requirePrincipal().userId, request.query)
    },
  )
}

export default routes
