import { type Static, Type } from '@sinclair/typebox'
import { Page, pageQuery, query, ref } from './common.js'

/** Schemas of comments and their pages. */

export const CommentBody = Type.String({
  minLength: 1,
  maxLength: 2000,
  'x-message': 'must be 1–2000 characters',
})

export const CommentInput = Type.Object(
  { body: CommentBody },
  {
    $id: 'CommentInput',
    additionalProperties: false,
    examples: [{ body: 'Tom & Jerry <3 <b>forever</b>' }],
  },
)
export type CommentInput = Static<typeof CommentInput>

export const Comment = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    body: Type.String({ description: 'HTML-safe text: no tags; "<" and ">" arrive as &lt; and &gt;' }),
    author: Type.Object({ id: Type.String({ format: 'uuid' }), username: Type.String() }),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  {
    $id: 'Comment',
    additionalProperties: false,
    examples: [
      {
        id: '7d2e9c41-5b3a-4f8e-a1c6-2e4f6a8b0c1d',
        body: 'Tom & Jerry &lt;3 forever',
        author: { id: '0b6f3a52-8c1d-4e7a-9f25-6d3c2b1a0e94', username: 'alice' },
        createdAt: '2025-01-31T09:41:00.000Z',
        updatedAt: '2025-01-31T09:41:00.000Z',
      },
    ],
  },
)
export type Comment = Static<typeof Comment>

export const CommentQuery = query(
  Type.Object(
    {
      ...pageQuery,
      author: Type.Optional(Type.String({ minLength: 1, maxLength: 32, description: 'Only this username.' })),
    },
    { additionalProperties: false },
  ),
)
export type CommentQuery = Static<typeof CommentQuery>

export const CommentPage = Page(ref(Comment), 'CommentPage')
