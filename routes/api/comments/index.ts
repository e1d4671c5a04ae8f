import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { orApiKey } from '../../../schemas/api-keys.js'
import { Comment, CommentInput, CommentPage, CommentQuery } from '../../../schemas/comments.js'
import { IdParams, NoContent, Problem, ref, SIGNED_IN } from '../../../schemas/common.js'
import * as comments from '../../../services/comments.js'

/** Comments: create, list, read, edit and delete. */

const tags = ['comments']
const errors = { 400: Problem, 401: Problem, 403: Problem, 404: Problem }

const routes: FastifyPluginAsyncTypebox = async (app) => {
  // authorize('user') admits every role; it is where MFA_REQUIRED_ROLES=user takes effect.
  const signedIn = { onRequest: [app.authenticate, app.authorize('user')] }
  // API keys (plugins/app/api-keys.ts): writes need comments:write; a key sent to a read needs comments:read.
  const write = { config: { apiKeyScope: 'comments:write' as const } }
  const read = { config: { apiKeyScope: 'comments:read' as const } }
  const writeSecurity = orApiKey('comments:write', SIGNED_IN)
  const readSecurity = orApiKey('comments:read', [{}])

  app.post(
    '',
    {
      ...signedIn,
      ...write,
      schema: {
        tags,
        operationId: 'createComment',
        summary: 'Post a comment (sanitized: no markup)',
        security: writeSecurity,
        body: ref(CommentInput),
        response: { 201: ref(Comment, { description: 'The new comment' }), ...errors },
      },
    },
    async function createComment(request, reply) {
      const actor = request.requirePrincipal()
      const comment = await comments.createComment(app.serviceContext(request), actor, request.body.body)
      return reply.code(201).send(comment)
    },
  )

  app.get(
    '',
    {
      ...read,
      schema: {
        tags,
        operationId: 'listComments',
        summary: 'List comments, newest first',
        security: readSecurity,
        querystring: CommentQuery,
        response: { 200: ref(CommentPage, { description: 'A page of comments' }), 400: Problem },
      },
    },
    async function listComments(request) {
      return comments.listComments(app.serviceContext(request), request.query)
    },
  )

  app.get(
    '/:id',
    {
      ...read,
      schema: {
        tags,
        operationId: 'getComment',
        summary: 'Read one comment',
        security: readSecurity,
        params: IdParams,
        response: { 200: ref(Comment, { description: 'The comment' }), 400: Problem, 404: Problem },
      },
    },
    async function getComment(request) {
      return comments.getComment(app.serviceContext(request), request.params.id)
    },
  )

  app.patch(
    '/:id',
    {
      ...signedIn,
      ...write,
      schema: {
        tags,
        operationId: 'updateComment',
        summary: 'Edit your own comment',
        security: writeSecurity,
        params: IdParams,
        body: ref(CommentInput),
        response: { 200: ref(Comment, { description: 'The edited comment' }), ...errors },
      },
    },
    async function updateComment(request) {
      const actor = request.requirePrincipal()
      return comments.updateComment(app.serviceContext(request), actor, request.params.id, request.body.body)
    },
  )

  app.delete(
    '/:id',
    {
      ...signedIn,
      ...write,
      schema: {
        tags,
        operationId: 'deleteComment',
        summary: 'Delete your own comment (admins: any)',
        security: writeSecurity,
        params: IdParams,
        response: { 204: NoContent('Deleted'), ...errors },
      },
    },
    async function deleteComment(request, reply) {
      await comments.deleteComment(app.serviceContext(request), request.requirePrincipal(), request.params.id)
      return reply.code(204).send()
    },
  )
}

export default routes
