import t from 'tap'
import { EXAMPLE_USER, UserEnvelope } from '../../../schemas/auth.js'
import { Comment, CommentPage } from '../../../schemas/comments.js'
import { ref } from '../../../schemas/common.js'
import { SHARED_SCHEMAS } from '../../../schemas/shared.js'
import { build, expectProblem, signUp } from '../../helper.js'

/** Shared schemas are registered once, and a `$ref` to one is still the allowlist of what leaves. */

const comment = {
  id: '7d2e9c41-5b3a-4f8e-a1c6-2e4f6a8b0c1d',
  body: 'hello',
  author: { id: '0b6f3a52-8c1d-4e7a-9f25-6d3c2b1a0e94', username: 'alice' },
  createdAt: '2025-01-31T09:41:00.000Z',
  updatedAt: '2025-01-31T09:41:00.000Z',
}

t.test('every shared schema has its own $id and is registered on the app', async (t) => {
  const ids = SHARED_SCHEMAS.map((s) => s.$id)
  t.equal(new Set(ids).size, ids.length, 'no $id twice')
  t.ok(
    ids.every((id) => typeof id === 'string' && /^[A-Z][A-Za-z]+$/.test(id)),
    'PascalCase names',
  )
  const app = await build(t)
  t.same(Object.keys(app.getSchemas()).sort(), [...ids].sort())
  t.throws(() => ref(Comment.properties.author), /no \$id/, 'ref() refuses a schema that is not shared')
})

t.test('a field not in a referenced shared schema never leaves the service', async (t) => {
  const app = await build(t, {
    setup: (app) => {
      // Handlers that hand back more than the schema allows, as a careless repository row would.
      const leaky = {
        ...comment,
        authorEmail: 'alice@example.com',
        author: { ...comment.author, passwordHash: 'x' },
      }
      app.get('/test/comment', { schema: { response: { 200: ref(Comment) } } }, async () => leaky)
      app.get('/test/page', { schema: { response: { 200: ref(CommentPage) } } }, async () => ({
        items: [leaky],
        nextCursor: null,
        total: 1,
      }))
      // `as never`: the types forbid what this handler does on purpose.
      app.get('/test/me', { schema: { response: { 200: ref(UserEnvelope) } } }, async () => {
        const user = { ...EXAMPLE_USER, passwordHash: '$2b$10$secret', mfaSecret: 'JBSWY3DP' }
        return { user, sessionToken: 'secret' } as never
      })
    },
  })
  const one = await app.inject('/test/comment')
  t.equal(one.statusCode, 200)
  t.same(one.json(), comment, 'extra fields dropped at the top and in nested objects')
  const page = await app.inject('/test/page')
  t.same(page.json(), { items: [comment], nextCursor: null }, 'and in the items of a page')
  const me = await app.inject('/test/me')
  t.same(Object.keys(me.json()), ['user'])
  t.same(Object.keys(me.json().user).sort(), [
    'createdAt',
    'email',
    'emailVerified',
    'id',
    'role',
    'username',
  ])
  t.notMatch(me.body, /secret|passwordHash|mfaSecret|JBSWY3DP/, 'no secret in the bytes sent')
})

t.test(
  "a request body that references a shared schema is validated by it, in the schema's words",
  async (t) => {
    const app = await build(t)
    const user = await signUp(app, 'refbody')
    const res = await user.inject({ method: 'POST', url: '/api/comments', payload: { body: '', extra: 1 } })
    const problem = expectProblem(t, res, 400, 'urn:bulwark:problem:validation-error')
    t.same(
      problem.errors?.sort((a, b) => a.path.localeCompare(b.path)),
      [
        { path: 'body.body', message: 'must be 1–2000 characters' },
        { path: 'body.extra', message: 'is not an allowed property' },
      ],
    )
  },
)
