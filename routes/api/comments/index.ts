import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Comment, CommentInput, CommentPage, CommentQuery } from '../../../schemas/comments.js'
import { IdParams, ProblemSchema, SIGNED_IN } from '../../../schemas/common.js'
import * as comments from '../../../services/comments.js'

/** Comments: create, list, read, edit and delete. */

const tags = ['comments']
const errors = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema }

const routes: FastifyPluginAsyncTypebox = async (app) => {
  // authorize('user') admits every role; it is where MFA_REQUIRED_ROLES=user takes effect.
  const signedIn = { onRequest: [app.authenticate, app.authorize('user')] }

  app.post(
    '',
    {
      ...signedIn,
      schema: {
        tags,
        summary: 'Post a comment (sanitized: no markup)',
        security: SIGNED_IN,
        body: CommentInput,
        response: { 201: Comment, ...errors },
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
      schema: {
        tags,
        summary: 'List comments, newest first',
        security: [],
        querystring: CommentQuery,
        response: { 200: CommentPage, 400: ProblemSchema },
      },
    },
    async function listComments(request) {
      return comments.listComments(app.serviceContext(request), request.query)
    },
  )

  app.get(
    '/:id',
    {
      schema: {
        tags,
        summary: 'Read one comment',
        security: [],
        params: IdParams,
        response: { 200: Comment, 400: ProblemSchema, 404: ProblemSchema },
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
      schema: {
        tags,
        summary: 'Edit your own comment',
        security: SIGNED_IN,
        params: IdParams,
        body: CommentInput,
        response: { 200: Comment, ...errors },
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
      schema: {
        tags,
        summary: 'Delete your own comment (admins: any)',
        security: SIGNED_IN,
        params: IdParams,
        response: { 204: { type: 'null' }, ...errors },
      },
    },
    async function deleteComment(request, reply) {
      await comments.deleteComment(app.serviceContext(request), request.requirePrincipal(), request.params.id)
      return reply.code(204).send()
    },
  )
}

export default routes
