import type { Static } from '@sinclair/typebox'
import t, { type Test } from 'tap'
import type { App } from '../../../app.js'
import type { Comment, CommentPage } from '../../../schemas/comments.js'
import {
  build,
  expectEvery,
  expectProblem,
  type InjectResponse,
  type SignedInUser,
  signUp,
} from '../../helper.js'

type CommentJson = Static<typeof Comment>
type PageJson = Static<typeof CommentPage>
/** Who sends a request: a signed-in user, one with a forged header, or nobody. */
type User = Pick<SignedInUser, 'id' | 'headers'>

const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000'
const VALIDATION_ERROR = 'urn:bulwark:problem:validation-error'
const FORBIDDEN = 'urn:bulwark:problem:forbidden'
const NOT_FOUND = 'about:blank'

const buildApp = (t: Test) => build(t, { env: { BCRYPT_COST: '4' } })

const post = (app: App, user: User | null, body: unknown) =>
  app.inject({
    method: 'POST',
    url: '/api/comments',
    ...(user ? { headers: user.headers } : {}),
    payload: { body },
  })

async function create(app: App, user: User, body: string): Promise<CommentJson> {
  const res = await post(app, user, body)
  if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${res.body}`)
  return res.json<CommentJson>()
}

const patch = (app: App, user: User | null, id: string, body: unknown) =>
  app.inject({
    method: 'PATCH',
    url: `/api/comments/${id}`,
    ...(user ? { headers: user.headers } : {}),
    payload: { body },
  })

const del = (app: App, user: User | null, id: string) =>
  app.inject({ method: 'DELETE', url: `/api/comments/${id}`, ...(user ? { headers: user.headers } : {}) })

const list = (app: App, query: Record<string, string> = {}) =>
  app.inject({ method: 'GET', url: '/api/comments', query })

const getOne = (app: App, id: string) => app.inject({ method: 'GET', url: `/api/comments/${id}` })

async function storedBody(app: App, id: string): Promise<string | undefined> {
  const [row] = await app.sql<{ body: string }[]>`select body from comments where id = ${id}`
  return row?.body
}

async function countBy(app: App, user: User): Promise<number> {
  const [row] = await app.sql<{ n: number }[]>`
    select count(*)::int as n from comments where author_id = ${user.id}`
  return row?.n ?? -1
}

/** Follows nextCursor to the end; fails the test on any non-200 page. */
async function walk(t: Test, app: App, query: Record<string, string>) {
  const pages: CommentJson[][] = []
  let cursor: string | null = null
  for (let i = 0; i < 50; i++) {
    const res = await list(app, cursor ? { ...query, cursor } : query)
    t.equal(res.statusCode, 200, `page ${i + 1}`)
    const page = res.json<PageJson>()
    pages.push(page.items)
    cursor = page.nextCursor
    if (cursor === null) break
  }
  return pages
}

/** A 400 validation problem naming `path` among its field errors. */
function assertValidation(t: Test, res: InjectResponse, path: string, label: string) {
  const problem = expectProblem(t, res, 400, VALIDATION_ERROR, label)
  const paths = (problem.errors ?? []).map((e) => e.path)
  t.ok(paths.includes(path), `${label}: errors name ${path} (got ${JSON.stringify(paths)})`)
}

const ids = (items: CommentJson[]) => items.map((c) => c.id)

t.test('a comment’s life: create, list, read, edit, delete', async (t) => {
  const app = await buildApp(t)
  const alice = await signUp(app, 'alice')
  const created = await post(app, alice, 'First comment')
  const comment = created.json<CommentJson>()

  await t.test('create is a 201 with only the public fields, and writes the row', async (t) => {
    t.equal(created.statusCode, 201)
    t.same(
      Object.keys(comment).sort(),
      ['author', 'body', 'createdAt', 'id', 'updatedAt'],
      'only public fields',
    )
    t.same(Object.keys(comment.author).sort(), ['id', 'username'], 'author has only id and username')
    t.match(comment.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'id is a UUID')
    t.equal(comment.body, 'First comment')
    t.same(comment.author, { id: alice.id, username: alice.username })
    t.ok(!Number.isNaN(Date.parse(comment.createdAt)), 'createdAt is a date')
    t.ok(Date.parse(comment.updatedAt) >= Date.parse(comment.createdAt), 'updatedAt ≥ createdAt')
    t.equal(await storedBody(app, comment.id), 'First comment', 'row written')
  })

  await t.test('the list and GET one show the created comment as it is', async (t) => {
    const listed = await list(app)
    t.equal(listed.statusCode, 200)
    const page = listed.json<PageJson>()
    t.same(Object.keys(page).sort(), ['items', 'nextCursor'])
    t.same(
      page.items.find((c) => c.id === comment.id),
      comment,
      'the listed comment equals the created one',
    )
    t.equal(page.nextCursor, null, 'one comment: no next page')

    const one = await getOne(app, comment.id)
    t.equal(one.statusCode, 200)
    t.same(one.json(), comment, 'GET one returns the same comment')
  })

  await t.test('the author edits it: the body and updatedAt change, createdAt stays', async (t) => {
    const edited = await patch(app, alice, comment.id, 'Edited comment')
    t.equal(edited.statusCode, 200)
    const after = edited.json<CommentJson>()
    t.same(Object.keys(after).sort(), ['author', 'body', 'createdAt', 'id', 'updatedAt'])
    t.equal(after.id, comment.id)
    t.equal(after.body, 'Edited comment')
    t.equal(after.createdAt, comment.createdAt, 'createdAt does not move')
    t.ok(Date.parse(after.updatedAt) >= Date.parse(after.createdAt), 'updatedAt ≥ createdAt')
    t.ok(after.updatedAt > comment.updatedAt, 'updatedAt moved forward (microseconds, so strictly)')
    t.equal(await storedBody(app, comment.id), 'Edited comment', 'the edit is stored')
    t.same((await getOne(app, comment.id)).json(), after, 'GET one shows the edit')
  })

  await t.test('the author deletes it: 204, the row is gone, and later calls are 404', async (t) => {
    const deleted = await del(app, alice, comment.id)
    t.equal(deleted.statusCode, 204)
    t.equal(deleted.body, '', 'no body on 204')
    t.equal(await storedBody(app, comment.id), undefined, 'row gone')
    expectProblem(t, await getOne(app, comment.id), 404, NOT_FOUND, 'GET one of a deleted comment')
    t.equal((await del(app, alice, comment.id)).statusCode, 404, 'deleting again is 404')
    t.equal((await patch(app, alice, comment.id, 'x')).statusCode, 404, 'editing a deleted comment is 404')
  })
})

t.test('bodies are sanitized on create and on update', async (t) => {
  const app = await buildApp(t)
  const alice = await signUp(app, 'san')
  const created = await post(app, alice, '<script>x</script>Hello <b>there</b>')
  t.equal(created.statusCode, 201)
  const comment = created.json<CommentJson>()
  t.equal(comment.body, 'Hello there')
  t.equal(await storedBody(app, comment.id), 'Hello there', 'stored sanitized, not only returned so')

  const edited = await patch(app, alice, comment.id, '<img src=x onerror=alert(1)>Bye')
  t.equal(edited.statusCode, 200)
  t.equal(edited.json<CommentJson>().body, 'Bye')
  t.equal(await storedBody(app, comment.id), 'Bye', 'update stored sanitized')

  const plain = await create(app, alice, 'Tom & Jerry <3')
  t.equal(plain.body, 'Tom & Jerry &lt;3', 'plain text escaped once, not mangled')
  const resent = await patch(app, alice, plain.id, plain.body)
  t.equal(
    resent.json<CommentJson>().body,
    'Tom & Jerry &lt;3',
    'sending the stored body back does not double-escape',
  )

  for (const body of ['<script>alert(1)</script>', '<img src=x>', '   ', '<b></b>']) {
    const before = await countBy(app, alice)
    const res = await post(app, alice, body)
    assertValidation(t, res, 'body.body', `create ${JSON.stringify(body)}`)
    t.equal(await countBy(app, alice), before, `no row written for ${JSON.stringify(body)}`)

    const upd = await patch(app, alice, comment.id, body)
    assertValidation(t, upd, 'body.body', `update ${JSON.stringify(body)}`)
    t.equal(await storedBody(app, comment.id), 'Bye', 'the stored body is unchanged')
  }
})

t.test('issue 12 #15: a "<" that is not markup is stored as text, escaped once', async (t) => {
  const app = await buildApp(t)
  const alice = await signUp(app, 'lt')
  const cases: [sent: string, stored: string][] = [
    ['if a<b then c', 'if a&lt;b then c'],
    ['use <stdio.h> please', 'use &lt;stdio.h&gt; please'],
    ['List<T> <b>bold</b>', 'List&lt;T&gt; bold'],
  ]
  for (const [sent, stored] of cases) {
    const comment = await create(app, alice, sent)
    t.equal(comment.body, stored, `answered: ${sent}`)
    t.equal(await storedBody(app, comment.id), stored, `stored: ${sent}`)
    const resent = await patch(app, alice, comment.id, comment.body)
    t.equal(resent.json<CommentJson>().body, stored, `sent back unchanged: ${sent}`)
  }
})

t.test('body length bounds: 1–2000 characters before sanitizing', async (t) => {
  const app = await buildApp(t)
  const alice = await signUp(app, 'len')
  const ok = await create(app, alice, 'ok')

  const before = await countBy(app, alice)
  assertValidation(t, await post(app, alice, ''), 'body.body', 'empty')
  assertValidation(t, await post(app, alice, 'a'.repeat(2001)), 'body.body', '2001 characters')
  assertValidation(t, await patch(app, alice, ok.id, ''), 'body.body', 'patch empty')
  assertValidation(t, await patch(app, alice, ok.id, 'a'.repeat(2001)), 'body.body', 'patch 2001')
  t.equal(await countBy(app, alice), before, 'nothing written')
  t.equal(await storedBody(app, ok.id), 'ok', 'nothing changed')

  const max = await post(app, alice, 'a'.repeat(2000))
  t.equal(max.statusCode, 201, '2000 characters is accepted')
  t.equal(max.json<CommentJson>().body, 'a'.repeat(2000))
  const emoji = await post(app, alice, '👋'.repeat(2000))
  t.equal(emoji.statusCode, 201, '2000 emoji are 2000 characters (code points), not 4000')
  t.equal(emoji.json<CommentJson>().body, '👋'.repeat(2000))
  assertValidation(t, await post(app, alice, '👋'.repeat(2001)), 'body.body', '2001 emoji')
  const maxPatch = await patch(app, alice, ok.id, 'b'.repeat(2000))
  t.equal(maxPatch.statusCode, 200, '2000 characters on update')
  t.equal(maxPatch.json<CommentJson>().body.length, 2000)

  // 2000 "<" become 8000 characters of "&lt;": within the table's limit, so no database error.
  const angles = await post(app, alice, '<'.repeat(2000))
  t.equal(angles.statusCode, 201, 'the escaped form may be longer than 2000')
  t.equal(angles.json<CommentJson>().body, '&lt;'.repeat(2000))

  const wrongType = await post(app, alice, 42)
  assertValidation(t, wrongType, 'body.body', 'a number is not a string')
  const missing = await app.inject({
    method: 'POST',
    url: '/api/comments',
    headers: alice.headers,
    payload: {},
  })
  assertValidation(t, missing, 'body.body', 'missing body')
  const extra = await app.inject({
    method: 'POST',
    url: '/api/comments',
    headers: alice.headers,
    payload: { body: 'hi', authorId: UNKNOWN_ID },
  })
  assertValidation(t, extra, 'body.authorId', 'unknown property')
  t.equal(await countBy(app, alice), before + 3, 'only the three valid posts were written')
})

t.test('ownership: owner, other user, admin, anonymous', async (t) => {
  const app = await buildApp(t)
  const owner = await signUp(app, 'owner')
  const other = await signUp(app, 'other')
  const admin = await signUp(app, 'admin', { role: 'admin' })
  const comment = await create(app, owner, 'mine')

  await t.test('anyone may read, signed in or not', async (t) => {
    t.equal((await getOne(app, comment.id)).statusCode, 200, 'anonymous GET one')
    t.equal((await list(app)).statusCode, 200, 'anonymous GET list')
    for (const user of [other, admin]) {
      const res = await user.inject(`/api/comments/${comment.id}`)
      t.equal(res.statusCode, 200, `${user.username} can read`)
    }
  })

  await t.test('only the author may edit: another user and even an admin get 403', async (t) => {
    for (const user of [other, admin]) {
      const res = await patch(app, user, comment.id, 'hijacked')
      expectProblem(t, res, 403, FORBIDDEN, `PATCH by ${user.username}`)
      t.equal(await storedBody(app, comment.id), 'mine', 'body unchanged in the database')
    }
  })

  await t.test('a user who is neither the author nor an admin cannot delete', async (t) => {
    const denied = await del(app, other, comment.id)
    expectProblem(t, denied, 403, FORBIDDEN, 'DELETE by another user')
    t.equal(await storedBody(app, comment.id), 'mine', 'row still there')
  })

  await t.test('anonymous writes are 401 with a challenge, and change nothing', async (t) => {
    const anonPost = await post(app, null, 'anon')
    const anonPatch = await patch(app, null, comment.id, 'anon')
    const anonDelete = await del(app, null, comment.id)
    for (const [name, res] of [
      ['POST', anonPost],
      ['PATCH', anonPatch],
      ['DELETE', anonDelete],
    ] as const) {
      expectProblem(t, res, 401, 'urn:bulwark:problem:unauthenticated', `anonymous ${name}`)
      t.equal(res.headers['www-authenticate'], 'Bearer', `anonymous ${name} is challenged`)
    }
    const badToken = await post(app, { ...owner, headers: { authorization: 'Bearer not.a.token' } }, 'x')
    t.equal(badToken.statusCode, 401, 'a bad token is 401')
    t.equal(badToken.headers['www-authenticate'], 'Bearer error="invalid_token"')
    t.equal(await storedBody(app, comment.id), 'mine', 'anonymous PATCH/DELETE changed nothing')
    const [anonRows] = await app.sql<
      { n: number }[]
    >`select count(*)::int as n from comments where body = 'anon'`
    t.equal(anonRows?.n, 0, 'anonymous POST wrote nothing')
  })

  await t.test('the owner may edit', async (t) => {
    t.equal((await patch(app, owner, comment.id, 'still mine')).statusCode, 200, 'owner PATCH')
    t.equal(await storedBody(app, comment.id), 'still mine')
  })

  await t.test('an admin may delete another’s comment; that is audited with the admin’s id', async (t) => {
    const deleted = await del(app, admin, comment.id)
    t.equal(deleted.statusCode, 204, 'admin DELETE of another user’s comment')
    t.equal(await storedBody(app, comment.id), undefined, 'row gone')
    t.equal((await getOne(app, comment.id)).statusCode, 404)
    const events = await app.sql<{ userId: string; detail: Record<string, string> }[]>`
      select user_id, detail from audit_events
      where event = 'comment.deleted_by_admin' and detail->>'commentId' = ${comment.id}`
    t.equal(events.length, 1, 'one audit event')
    t.equal(events[0]?.userId, admin.id, 'with the admin’s user_id')
    t.equal(events[0]?.detail.authorId, owner.id, 'naming the author')
  })

  await t.test('deleting one’s own comment (even as an admin) is not an admin action', async (t) => {
    const own = await create(app, owner, 'own')
    t.equal((await del(app, owner, own.id)).statusCode, 204, 'owner DELETE')
    t.equal(await storedBody(app, own.id), undefined)
    const adminsOwn = await create(app, admin, 'admin’s own')
    t.equal((await del(app, admin, adminsOwn.id)).statusCode, 204, 'admin deletes own comment')
    const notAudited = await app.sql`
      select 1 from audit_events where event = 'comment.deleted_by_admin'
        and detail->>'commentId' in (${own.id}, ${adminsOwn.id})`
    t.equal(notAudited.length, 0, 'deleting one’s own comment is not audited as an admin deletion')
  })

  await t.test('a demoted admin loses the power at once (the role is read from the database)', async (t) => {
    const target = await create(app, other, 'target')
    await app.sql`update users set role = 'user' where id = ${admin.id}`
    t.equal((await del(app, admin, target.id)).statusCode, 403, 'demoted admin cannot delete')
    t.equal(await storedBody(app, target.id), 'target')
  })
})

t.test('malformed ids are 400 on every method; an unknown UUID is 404', async (t) => {
  const app = await buildApp(t)
  const alice = await signUp(app, 'ids')
  const existing = await create(app, alice, 'kept')
  const malformed = [
    '123',
    'not-a-uuid',
    encodeURIComponent("1' or '1'='1"),
    '%00',
    encodeURIComponent(`urn:uuid:${existing.id}`),
    `${existing.id}0`,
    existing.id.replaceAll('-', ''),
    encodeURIComponent(`${existing.id}'--`),
  ]
  for (const id of malformed) {
    for (const [method, res] of [
      ['GET', await getOne(app, id)],
      ['PATCH', await patch(app, alice, id, 'changed')],
      ['DELETE', await del(app, alice, id)],
    ] as const) {
      assertValidation(t, res, 'params.id', `${method} /api/comments/${id}`)
      t.not(res.statusCode, 500, `${method} ${id} is never a database error`)
    }
  }
  t.equal(await storedBody(app, existing.id), 'kept', 'nothing was changed by any of them')

  for (const [method, res] of [
    ['GET', await getOne(app, UNKNOWN_ID)],
    ['PATCH', await patch(app, alice, UNKNOWN_ID, 'x')],
    ['DELETE', await del(app, alice, UNKNOWN_ID)],
  ] as const) {
    expectProblem(t, res, 404, NOT_FOUND, `${method} unknown UUID`)
  }
  const upper = await getOne(app, existing.id.toUpperCase())
  t.equal(upper.statusCode, 200, 'an upper-case UUID is the same id')
  t.equal(upper.json<CommentJson>().id, existing.id)
})

t.test('query bounds: limit, unknown parameters, author', async (t) => {
  const app = await buildApp(t)
  const alice = await signUp(app, 'bounds')
  await create(app, alice, 'one')
  // "Infinity" and "1e999" coerce to non-finite numbers, which Ajv's minimum/maximum checks skip.
  const bad = ['1e9', '-1', '0', '101', 'abc', '1.5', '', '10abc', 'NaN', 'Infinity', '-Infinity', '1e999']
  for (const limit of bad) {
    const res = await list(app, { limit })
    assertValidation(t, res, 'querystring.limit', `limit=${limit}`)
  }
  const repeated = await app.inject({ url: '/api/comments?limit=10&limit=20' })
  t.equal(repeated.statusCode, 400, 'a repeated limit is 400')
  for (const limit of ['1', '100']) {
    const res = await list(app, { limit })
    t.equal(res.statusCode, 200, `limit=${limit}`)
    t.ok(res.json<PageJson>().items.length <= Number(limit))
  }
  const unknown = await list(app, { offset: '10' })
  assertValidation(t, unknown, 'querystring.offset', 'unknown query parameter')
  const empty = await list(app, { author: '' })
  assertValidation(t, empty, 'querystring.author', 'empty author')
  const long = await list(app, { author: 'a'.repeat(33) })
  assertValidation(t, long, 'querystring.author', 'author longer than 32')
  t.equal((await list(app, { author: 'a'.repeat(32) })).statusCode, 200, '32-character author')
})

t.test('cursors: the issued one is opaque and works; forged ones are 400', async (t) => {
  const app = await buildApp(t)
  const alice = await signUp(app, 'cur')
  const made: CommentJson[] = []
  for (let i = 0; i < 3; i++) made.push(await create(app, alice, `c${i}`))
  const first = await list(app, { author: alice.username, limit: '1' })
  const cursor = first.json<PageJson>().nextCursor as string

  await t.test('the issued cursor is opaque and continues after the first item', async (t) => {
    t.type(cursor, 'string', 'a real cursor was issued')
    t.match(cursor, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'opaque: payload.signature in base64url')
    // Signed, not secret: it names the position (an id every reader of the page sees anyway), and
    // the forgeries below show that changing it is refused.
    const payload = Buffer.from(cursor.split('.')[0] ?? '', 'base64url').toString()
    t.match(payload, made[2]?.id ?? '?', 'the position is the last item of the page')

    // Positive control for the forgeries below: the real cursor works.
    const second = await list(app, { author: alice.username, limit: '1', cursor })
    t.equal(second.statusCode, 200, 'the real cursor is accepted')
    t.same(ids(second.json<PageJson>().items), [made[1]?.id], 'and continues after the first item')
  })

  await t.test('forged cursors are 400 on querystring.cursor', async (t) => {
    const [payload = '', signature = ''] = cursor.split('.')
    const flip = (s: string, i: number) => {
      const c = s[i] === 'A' ? 'B' : 'A'
      return `${s.slice(0, i)}${c}${s.slice(i + 1)}`
    }
    const decoded = Buffer.from(payload, 'base64url').toString('utf8')
    t.match(decoded, /\|[0-9a-f-]{36}$/, 'the payload is a position (created_at|id)')
    const [createdAt, id] = decoded.split('|') as [string, string]
    const reencode = (p: string) => `${Buffer.from(p).toString('base64url')}.${signature}`
    const otherId = made[0]?.id ?? UNKNOWN_ID
    t.not(otherId, id)

    const forged: [string, string][] = [
      ['random string', 'randomgarbage'],
      ['random dotted string', 'abc.def'],
      ['random long dotted string', `${'x'.repeat(40)}.${'y'.repeat(22)}`],
      ['first payload character changed', flip(cursor, 0)],
      ['middle payload character changed', `${flip(payload, Math.floor(payload.length / 2))}.${signature}`],
      ['first signature character changed', `${payload}.${flip(signature, 0)}`],
      ['middle signature character changed', `${payload}.${flip(signature, 10)}`],
      ['payload only', payload],
      ['signature only', `.${signature}`],
      ['empty signature', `${payload}.`],
      ['payload with a different id, old signature', reencode(`${createdAt}|${otherId}`)],
      ['payload with a later time, old signature', reencode(`2999-01-01 00:00:00+00|${id}`)],
      ['payload with SQL, old signature', reencode(`${createdAt}|${id}' or '1'='1`)],
      [
        'signature of a different position',
        `${Buffer.from(`${createdAt}|${otherId}`).toString('base64url')}.${signature}`,
      ],
      ['not base64url at all', 'not a cursor!'],
      ['too long', 'a'.repeat(513)],
    ]
    for (const [label, value] of forged) {
      const res = await list(app, { author: alice.username, limit: '1', cursor: value })
      assertValidation(t, res, 'querystring.cursor', label)
    }
    const empty = await list(app, { cursor: '' })
    assertValidation(t, empty, 'querystring.cursor', 'empty cursor')
  })
})

t.test('pagination: 25 comments in pages of 10, newest first, no duplicates or gaps', async (t) => {
  const app = await buildApp(t)
  await app.sql`delete from comments` // this subtest checks the unfiltered listing
  const alice = await signUp(app, 'pager')
  const bob = await signUp(app, 'pager')
  const created: CommentJson[] = []
  for (let i = 0; i < 25; i++) created.push(await create(app, i % 2 ? bob : alice, `comment ${i}`))
  const newestFirst = ids(created).reverse()

  const pages = await walk(t, app, { limit: '10' })
  t.same(
    pages.map((p) => p.length),
    [10, 10, 5],
    'three pages: 10, 10, 5, then nextCursor null',
  )
  const seen = pages.flatMap(ids)
  t.equal(new Set(seen).size, seen.length, 'no duplicates')
  t.same(seen, newestFirst, 'exactly the 25 comments, newest first')
  const times = pages.flat().map((c) => Date.parse(c.createdAt))
  expectEvery(t, times, (v, i) => i === 0 || v <= (times[i - 1] ?? 0), 'createdAt never increases')

  const defaults = (await list(app)).json<PageJson>()
  t.equal(defaults.items.length, 20, 'default limit is 20')
  t.type(defaults.nextCursor, 'string')

  const exact = await walk(t, app, { limit: '25' })
  t.same(
    exact.map((p) => p.length),
    [25],
    'a limit equal to the total gives one page and no cursor',
  )

  // The same walk restricted to one author.
  const alicePages = await walk(t, app, { limit: '5', author: alice.username })
  t.same(
    alicePages.flatMap(ids),
    newestFirst.filter((id) => created.find((c) => c.id === id)?.author.id === alice.id),
    'author-filtered pages are alice’s 13 comments, newest first',
  )
  t.same(
    alicePages.map((p) => p.length),
    [5, 5, 3],
  )
})

t.test('pagination is keyset-based: ties on created_at are broken by id', async (t) => {
  const app = await buildApp(t)
  const alice = await signUp(app, 'ties')
  const rows = await app.sql<{ id: string }[]>`
    insert into comments (author_id, body, created_at, updated_at)
    select ${alice.id}, 'tie ' || g, '2020-01-01 00:00:00.123456+00', '2020-01-01 00:00:00.123456+00'
    from generate_series(1, 12) g
    returning id`
  const expected = rows
    .map((r) => r.id)
    .sort()
    .reverse()
  const pages = await walk(t, app, { limit: '5', author: alice.username })
  t.same(
    pages.map((p) => p.length),
    [5, 5, 2],
    'pages of 5, 5, 2',
  )
  t.same(pages.flatMap(ids), expected, 'all 12 rows with the same time, by id descending, none twice')

  // Rows microseconds apart inside one millisecond: the cursor must keep microsecond precision.
  const bob = await signUp(app, 'micro')
  const micro = await app.sql<{ id: string }[]>`
    insert into comments (author_id, body, created_at, updated_at)
    select ${bob.id}, 'micro ' || g, t, t
    from generate_series(1, 6) g,
      lateral (select '2021-06-01 12:00:00.500000+00'::timestamptz + g * interval '100 microseconds' as t) x
    returning id, created_at`
  const microNewestFirst = micro.map((r) => r.id).reverse()
  const microPages = await walk(t, app, { limit: '2', author: bob.username })
  t.same(
    microPages.flatMap(ids),
    microNewestFirst,
    'all 6 rows of one millisecond, newest first, none skipped',
  )
})

t.test('pagination is stable while comments are inserted or deleted', async (t) => {
  const app = await buildApp(t)
  await app.sql`delete from comments` // this subtest checks the unfiltered listing
  const alice = await signUp(app, 'stable')
  const bob = await signUp(app, 'stable')
  const created: CommentJson[] = []
  for (let i = 0; i < 15; i++) created.push(await create(app, alice, `old ${i}`))
  const newestFirst = ids(created).reverse()
  const fresh: CommentJson[] = []

  await t.test('comments inserted between two pages do not shift the second page', async (t) => {
    const page1 = (await list(app, { limit: '10' })).json<PageJson>()
    t.same(ids(page1.items), newestFirst.slice(0, 10), 'page 1')
    t.type(page1.nextCursor, 'string')

    for (let i = 0; i < 5; i++) fresh.push(await create(app, i % 2 ? alice : bob, `new ${i}`))

    const res2 = await list(app, { limit: '10', cursor: page1.nextCursor as string })
    t.equal(res2.statusCode, 200)
    const page2 = res2.json<PageJson>()
    t.same(ids(page2.items), newestFirst.slice(10), 'page 2 continues exactly after page 1')
    t.equal(page2.nextCursor, null, 'and ends there')
    const freshIds = new Set(ids(fresh))
    t.notOk(
      page2.items.some((c) => freshIds.has(c.id)),
      'the new comments do not appear on page 2',
    )
  })

  await t.test('deleting the row a cursor points at does not break the walk', async (t) => {
    const page1b = (await list(app, { limit: '3' })).json<PageJson>()
    const last = page1b.items.at(-1) as CommentJson
    const lastOnPage = last.id
    const lastAuthor = last.author.id === alice.id ? alice : bob
    t.equal((await del(app, lastAuthor, lastOnPage)).statusCode, 204, 'the last item of page 1 is deleted')
    const page2b = await list(app, { limit: '3', cursor: page1b.nextCursor as string })
    t.equal(page2b.statusCode, 200, 'a cursor at a deleted row still works')
    const all = [...ids(fresh).reverse(), ...newestFirst]
    t.same(ids(page2b.json<PageJson>().items), all.slice(3, 6), 'and continues after that position')

    const fromTop = await walk(t, app, { limit: '10' })
    t.same(
      fromTop.flatMap(ids),
      all.filter((id) => id !== lastOnPage),
      'a fresh walk sees everything once',
    )
  })
})

t.test('author filter: by username, case-insensitive, unknown is empty', async (t) => {
  const app = await buildApp(t)
  const alice = await signUp(app, 'Author')
  const bob = await signUp(app, 'author')
  const a1 = await create(app, alice, 'a1')
  const b1 = await create(app, bob, 'b1')
  const a2 = await create(app, alice, 'a2')

  for (const name of [alice.username, alice.username.toUpperCase(), alice.username.toLowerCase()]) {
    const res = await list(app, { author: name })
    t.equal(res.statusCode, 200, name)
    const page = res.json<PageJson>()
    t.same(ids(page.items), [a2.id, a1.id], `only alice’s comments for ${name}`)
    expectEvery(t, page.items, (c) => c.author.id === alice.id, 'every item is by alice')
  }
  const bobs = (await list(app, { author: bob.username })).json<PageJson>()
  t.same(ids(bobs.items), [b1.id])

  const unknown = await list(app, { author: 'nobody_at_all' })
  t.equal(unknown.statusCode, 200)
  t.same(unknown.json(), { items: [], nextCursor: null }, 'unknown author: empty list')
})

t.test('SQL metacharacters are stored verbatim and never reach SQL as code', async (t) => {
  const app = await buildApp(t)
  const alice = await signUp(app, 'sqli')
  const bodies = [
    "Robert'); DROP TABLE comments;--",
    "\\' OR 1=1 --",
    '%_\\',
    '$1 $$ ::text',
    "'; select pg_sleep(5);--",
  ]
  const made: CommentJson[] = []
  for (const body of bodies) {
    const res = await post(app, alice, body)
    t.equal(res.statusCode, 201, JSON.stringify(body))
    const comment = res.json<CommentJson>()
    t.equal(comment.body, body, `returned verbatim: ${body}`)
    t.equal(await storedBody(app, comment.id), body, `stored verbatim: ${body}`)
    t.equal((await getOne(app, comment.id)).json<CommentJson>().body, body, `read back verbatim: ${body}`)
    made.push(comment)
  }
  const edited = await patch(app, alice, made[0]?.id as string, "x' where 1=1;--")
  t.equal(edited.statusCode, 200)
  t.equal(edited.json<CommentJson>().body, "x' where 1=1;--", 'update verbatim')
  t.equal(await storedBody(app, made[1]?.id as string), bodies[1], 'the update touched one row only')

  const [table] = await app.sql<{ name: string | null }[]>`select to_regclass('comments')::text as name`
  t.equal(table?.name, 'comments', 'the comments table still exists')
  t.equal(await countBy(app, alice), bodies.length, 'all rows are there')

  for (const author of ["' OR '1'='1", "' OR 1=1 --", '%', '_%', '\\', "'; drop table comments;--"]) {
    const res = await list(app, { author })
    t.equal(res.statusCode, 200, `author=${author}`)
    t.same(res.json(), { items: [], nextCursor: null }, `author=${author} matches nothing`)
  }
  const [still] = await app.sql<{ name: string | null }[]>`select to_regclass('comments')::text as name`
  t.equal(still?.name, 'comments', 'still there after the author probes')
})

t.test('a NUL character in a string is never a 500', async (t) => {
  const app = await buildApp(t)
  const alice = await signUp(app, 'nul')
  const comment = await create(app, alice, 'before')

  const created = await post(app, alice, 'a\u0000b')
  t.not(created.statusCode, 500, `POST with NUL: ${created.statusCode} ${created.body.slice(0, 200)}`)
  t.ok([400, 201].includes(created.statusCode), 'POST with NUL is 400 or 201')

  const updated = await patch(app, alice, comment.id, 'a\u0000b')
  t.not(updated.statusCode, 500, `PATCH with NUL: ${updated.statusCode} ${updated.body.slice(0, 200)}`)
  t.ok([400, 200].includes(updated.statusCode), 'PATCH with NUL is 400 or 200')

  const author = await list(app, { author: 'a\u0000b' })
  t.not(author.statusCode, 500, `author with NUL: ${author.statusCode} ${author.body.slice(0, 200)}`)
  t.ok([400, 200].includes(author.statusCode), 'author with NUL is 400 or 200')
})
