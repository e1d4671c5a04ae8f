import { listPage, type Position } from '../lib/cursor.js'
import { forbidden, invalidField, notFound } from '../lib/errors.js'
import * as repo from '../repositories/comments.js'
import type { Comment, CommentQuery } from '../schemas/comments.js'
import type { ServiceContext } from './context.js'
import { sanitizeComment } from './sanitize.js'

/** Comment rules: sanitizing, ownership, pagination. */

type CommentsContext = Pick<ServiceContext, 'sql' | 'cursors' | 'audit'>

interface Actor {
  userId: string
  role: 'user' | 'admin'
}

function toComment(row: repo.CommentRow): Comment {
  return {
    id: row.id,
    body: row.body,
    author: { id: row.authorId, username: row.authorUsername },
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  }
}

const nothingLeft = () => invalidField('body.body', 'must contain text once markup is removed')

export async function createComment(ctx: CommentsContext, actor: Actor, body: string): Promise<Comment> {
  // Sanitized before storage, on create and update alike (OWASP ASVS 1.3); nothing left, nothing stored.
  const safe = sanitizeComment(body)
  if (safe.length === 0) throw nothingLeft()
  return toComment(await repo.insertComment(ctx.sql, actor.userId, safe))
}

export async function getComment(ctx: Pick<ServiceContext, 'sql'>, id: string): Promise<Comment> {
  const row = await repo.findComment(ctx.sql, id)
  if (!row) throw notFound()
  return toComment(row)
}

export async function listComments(ctx: CommentsContext, q: CommentQuery) {
  const fetch = (after: Position | null) =>
    repo.listComments(ctx.sql, { limit: q.limit, after, author: q.author })
  return listPage(ctx.cursors, 'comments', q, fetch, toComment)
}

/**
 * Anyone may read a comment; only its author may change it (OWASP ASVS 8.2.2). One statement does
 * the work; only when it matched nothing does a lookup say why: absent (404), not yours (403), or
 * nothing left after sanitizing (400), in that order.
 */
export async function updateComment(
  ctx: CommentsContext,
  actor: Actor,
  id: string,
  body: string,
): Promise<Comment> {
  const safe = sanitizeComment(body)
  const row = safe.length > 0 ? await repo.updateOwnComment(ctx.sql, id, actor.userId, safe) : undefined
  if (row) return toComment(row)
  const authorId = await repo.findCommentAuthor(ctx.sql, id)
  if (authorId === undefined) throw notFound()
  if (authorId !== actor.userId) throw forbidden()
  throw safe.length === 0 ? nothingLeft() : notFound()
}

/** Authors delete their own comments; admins any, and that is audited. */
export async function deleteComment(ctx: CommentsContext, actor: Actor, id: string): Promise<void> {
  const anyAuthor = actor.role === 'admin'
  await ctx.sql.begin(async (tx) => {
    const deleted = await repo.deleteComment(tx, id, { authorId: actor.userId, anyAuthor })
    if (!deleted) throw (await repo.findCommentAuthor(tx, id)) === undefined ? notFound() : forbidden()
    // An admin's deletion and its audit row commit together (ASVS 5.0 16.3.4).
    if (deleted.authorId !== actor.userId) {
      const detail = { commentId: id, authorId: deleted.authorId }
      await ctx.audit('comment.deleted_by_admin', actor.userId, detail, tx)
    }
  })
}
