import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import {
  AdminUser,
  AdminUserPage,
  AdminUserPatch,
  AdminUserQuery,
  AuditPage,
  AuditQuery,
} from '../../../schemas/admin.js'
import { orApiKey } from '../../../schemas/api-keys.js'
import { IdParams, Problem, ProblemSchema, ref, SIGNED_IN } from '../../../schemas/common.js'
import * as admin from '../../../services/admin.js'

/** The admin API: users and the audit log (guarded by autohooks.ts). */

const tags = ['admin']
const errors = { 400: Problem, 401: Problem, 403: Problem }
/** A session, or an API key with the admin scope of an enabled admin (autohooks.ts declares it). */
const adminSecurity = orApiKey('admin', SIGNED_IN)

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/users',
    {
      schema: {
        tags,
        operationId: 'adminListUsers',
        summary: 'List users',
        security: adminSecurity,
        querystring: AdminUserQuery,
        response: { 200: ref(AdminUserPage, { description: 'A page of users' }), ...errors },
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
        operationId: 'adminUpdateUser',
        summary: "Change a user's role or disabled flag (revokes their sessions)",
        security: adminSecurity,
        params: IdParams,
        body: AdminUserPatch,
        response: {
          200: ref(AdminUser, { description: 'The user as changed' }),
          ...errors,
          404: Problem,
          409: ref(ProblemSchema, { description: 'The change would leave no enabled admin (last-admin)' }),
        },
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
        operationId: 'adminListAuditEvents',
        summary: 'Read the audit log',
        security: adminSecurity,
        querystring: AuditQuery,
        response: { 200: ref(AuditPage, { description: 'A page of audit events, newest first' }), ...errors },
      },
    },
    async function listAuditEvents(request) {
      return admin.listAudit(app.serviceContext(request), request.requirePrincipal().userId, request.query)
    },
  )
}

export default routes
