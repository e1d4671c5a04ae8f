import type { Sql } from 'postgres'
import * as repo from '../repositories/comments.js'
import type { Comment, CommentQuery } from '../schemas/comments.js'
import type { Audit } from './audit.js'
import { type CursorCodec, listPage, type Position } from './cursor.js'
import { AppError } from './errors.js'
import { sanitizeComment } from './sanitize.js'

export interface CommentsContext {
  sql: Sql
  cursors: CursorCodec
  audit: Audit
}

interface Actor {
  userId: string
  role: 'user' | 'admin'
}

const notFound = () => new AppError(404, 'The requested resource does not exist.')
const forbidden = () => new AppError(403, 'You do not have permission to do this.', { type: 'forbidden' })

function toComment(row: repo.CommentRow): Comment {
  return {
    id: row.id,
    body: row.body,
    author: { id: row.authorId, username: row.authorUsername },
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  }
}

/** Sanitized before storage, on create and update alike; nothing left means nothing to store. */
function clean(body: string): string {
  const safe = sanitizeComment(body)
  if (safe.length === 0) {
    throw new AppError(400, 'The request is invalid; see errors for each field.', {
      type: 'validation-error',
      errors: [{ path: 'body.body', message: 'must contain text once markup is removed' }],
    })
  }
  return safe
}

export async function createComment(ctx: CommentsContext, actor: Actor, body: string): Promise<Comment> {
  return toComment(await repo.insertComment(ctx.sql, actor.userId, clean(body)))
}

export async function getComment(sql: Sql, id: string): Promise<Comment> {
  const row = await repo.findComment(sql, id)
  if (!row) throw notFound()
  return toComment(row)
}

export async function listComments(ctx: CommentsContext, q: CommentQuery) {
  const fetch = (after: Position | null) =>
    repo.listComments(ctx.sql, { limit: q.limit, after, author: q.author })
  return listPage(ctx.cursors, 'comments', q, fetch, toComment)
}

/** Anyone may read a comment; only its author may change it (OWASP ASVS 8.2.2). */
export async function updateComment(
  ctx: CommentsContext,
  actor: Actor,
  id: string,
  body: string,
): Promise<Comment> {
  const existing = await repo.findComment(ctx.sql, id)
  if (!existing) throw notFound()
  if (existing.authorId !== actor.userId) throw forbidden()
  const safe = clean(body)
  if (!(await repo.updateOwnComment(ctx.sql, id, actor.userId, safe))) throw notFound()
  return getComment(ctx.sql, id)
}

export async function deleteComment(ctx: CommentsContext, actor: Actor, id: string): Promise<void> {
  const existing = await repo.findComment(ctx.sql, id)
  if (!existing) throw notFound()
  const own = existing.authorId === actor.userId
  if (!own && actor.role !== 'admin') throw forbidden()
  const deleted = await repo.deleteComment(ctx.sql, id)
  if (!deleted) throw notFound()
  if (!own)
    await ctx.audit('comment.deleted_by_admin', actor.userId, { commentId: id, authorId: deleted.authorId })
}
