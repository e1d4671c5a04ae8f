import { type Static, Type } from '@sinclair/typebox'
import { Page, pageQuery } from './common.js'

/** Schemas of comments and their pages. */

export const CommentBody = Type.String({
  minLength: 1,
  maxLength: 2000,
  'x-message': 'must be 1–2000 characters',
})

export const CommentInput = Type.Object({ body: CommentBody }, { additionalProperties: false })
export type CommentInput = Static<typeof CommentInput>

export const Comment = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    body: Type.String({ description: 'HTML-safe text: no tags; "<" and ">" arrive as &lt; and &gt;' }),
    author: Type.Object({ id: Type.String({ format: 'uuid' }), username: Type.String() }),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
)
export type Comment = Static<typeof Comment>

export const CommentQuery = Type.Object(
  {
    ...pageQuery,
    author: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
  },
  { additionalProperties: false },
)
export type CommentQuery = Static<typeof CommentQuery>

export const CommentPage = Page(Comment)
