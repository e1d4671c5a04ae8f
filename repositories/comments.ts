import type { Sql, TransactionSql } from 'postgres'
import type { Position } from '../lib/cursor.js'
import { olderThan } from './keyset.js'

/** SQL for comments. */

export interface CommentRow {
  id: string
  body: string
  authorId: string
  authorUsername: string
  createdAt: Date
  updatedAt: Date
  /** created_at as PostgreSQL prints it (microseconds), for exact keyset cursors. */
  cursorAt: string
}

const columns = (sql: Sql) => sql`
  c.id, c.body, c.author_id, u.username as author_username, c.created_at, c.updated_at,
  c.created_at::text as cursor_at
`

export async function insertComment(sql: Sql, authorId: string, body: string): Promise<CommentRow> {
  const [row] = await sql<CommentRow[]>`
    with c as (insert into comments (author_id, body) values (${authorId}, ${body}) returning *)
    select ${columns(sql)} from c join users u on u.id = c.author_id
  `
  return row as CommentRow
}

export async function findComment(sql: Sql, id: string): Promise<CommentRow | undefined> {
  const [row] = await sql<CommentRow[]>`
    select ${columns(sql)} from comments c join users u on u.id = c.author_id where c.id = ${id}
  `
  return row
}

/** Newest first, after the cursor's (created_at, id); one extra row tells if a next page exists. */
export async function listComments(
  sql: Sql,
  q: { limit: number; after: Position | null; author?: string | undefined },
): Promise<CommentRow[]> {
  return sql<CommentRow[]>`
    select ${columns(sql)}
    from comments c join users u on u.id = c.author_id
    where true
      ${q.author !== undefined ? sql`and lower(u.username collate "C") = lower(${q.author}::text collate "C")` : sql``}
      ${olderThan(sql, q.after, 'c')}
    order by c.created_at desc, c.id desc
    limit ${q.limit + 1}
  `
}

/** Updates only when the caller is the author: ownership is part of the statement, not a prior check. */
export async function updateOwnComment(
  sql: Sql,
  id: string,
  authorId: string,
  body: string,
): Promise<CommentRow | undefined> {
  const [row] = await sql<CommentRow[]>`
    with c as (
      update comments set body = ${body}, updated_at = clock_timestamp()
      where id = ${id} and author_id = ${authorId}
      returning *
    )
    select ${columns(sql)} from c join users u on u.id = c.author_id
  `
  return row
}

/** Deletes the comment when the caller is its author, or whoever wrote it when `anyAuthor` (admins). */
export async function deleteComment(
  sql: Sql | TransactionSql,
  id: string,
  by: { authorId: string; anyAuthor: boolean },
): Promise<{ authorId: string } | undefined> {
  const [row] = await sql<{ authorId: string }[]>`
    delete from comments
    where id = ${id} ${by.anyAuthor ? sql`` : sql`and author_id = ${by.authorId}`}
    returning author_id
  `
  return row
}

/** Who wrote a comment: only asked when a statement matched nothing, to tell 403 from 404. */
export async function findCommentAuthor(sql: Sql | TransactionSql, id: string): Promise<string | undefined> {
  const [row] = await sql<{ authorId: string }[]>`select author_id from comments where id = ${id}`
  return row?.authorId
}
