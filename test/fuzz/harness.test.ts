import t from 'tap'
import { build } from '../helper.js'
import { breach } from './harness.js'
import { allowedStatuses, inlineRefs, type Operation, readOperations } from './openapi.js'
import { World } from './world.js'

/** The fuzzer's own checks catch what they are for: a fault, a non-problem error, a changed row. */

const op: Operation = {
  method: 'GET',
  path: '/fuzz-probe',
  tag: 'probe',
  parameters: [],
  body: undefined,
  secured: false,
  declared: new Set([200]),
}

t.test('breach() names each broken promise and passes a kept one', async (t) => {
  const app = await build(t, {
    setup: (app) => {
      app.get('/fault', { schema: { hide: true } }, async () => {
        throw new Error('boom')
      })
      app.get('/plain', { schema: { hide: true } }, async (_req, reply) => reply.code(404).send('nope'))
      app.get('/teapot', { schema: { hide: true } }, async (_req, reply) => reply.code(418).send({}))
      app.get('/created', { schema: { hide: true } }, async (_req, reply) => reply.code(201).send({}))
    },
  })
  const allowed = allowedStatuses(op)
  t.match(breach(op, allowed, await app.inject('/fault')), /a 500/)
  t.match(breach(op, allowed, await app.inject('/plain')), /not problem\+json/)
  t.match(breach(op, allowed, await app.inject('/teapot')), /a 418, not among/)
  t.match(breach(op, allowed, await app.inject('/created')), /an undeclared 201/)
  t.equal(breach(op, allowed, await app.inject('/missing')), undefined, 'a 404 problem is allowed')
})

t.test('the checksum sees a row change in a user-visible table', async (t) => {
  const app = await build(t)
  const world = await World.create(t, app)
  const before = await world.checksum()
  t.same(await world.changedSince(before), [], 'nothing changed')
  await app.sql`update comments set body = body || '!'`
  t.same(await world.changedSince(before), ['comments'], 'an update of a comment')
  const after = await world.checksum()
  await app.sql`update users set disabled = true where username like 'fzb%'`
  t.same(await world.changedSince(after), ['users'], 'an update of a user')
})

t.test('the operations read from the document carry no $ref: shared schemas are inlined', async (t) => {
  const app = await build(t)
  const ops = await readOperations(app)
  t.notMatch(JSON.stringify(ops.map((op) => [op.body, op.parameters])), /\$ref/, 'every $ref resolved')
  const create = ops.find((op) => op.method === 'POST' && op.path === '/api/comments')
  t.match(create?.body, { type: 'object', properties: { body: { type: 'string', maxLength: 2000 } } })
  const list = ops.find((op) => op.method === 'GET' && op.path === '/api/comments')
  t.match(
    list?.parameters.find((p) => p.name === 'limit'),
    { required: false, schema: { default: 20 } },
  )

  const components = { A: { type: 'object', properties: { b: { $ref: '#/components/schemas/B' } } }, B: {} }
  t.same(inlineRefs({ items: { $ref: '#/components/schemas/A' } } as never, components as never), {
    items: { type: 'object', properties: { b: {} } },
  })
  t.throws(() => inlineRefs({ $ref: '#/components/schemas/Nope' } as never, {}), /unresolvable/)
  t.throws(() => inlineRefs({ $ref: 'other.json#/x' } as never, {}), /unresolvable/)
  const loop = { L: { items: { $ref: '#/components/schemas/L' } } }
  t.throws(() => inlineRefs({ $ref: '#/components/schemas/L' } as never, loop as never), /recursive/)
})
