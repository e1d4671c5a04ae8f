import t from 'tap'
import { build } from '../helper.js'
import { breach } from './harness.js'
import { allowedStatuses, type Operation } from './openapi.js'
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
