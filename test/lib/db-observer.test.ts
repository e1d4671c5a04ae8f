import { AsyncLocalStorage } from 'node:async_hooks'
import postgres from 'postgres'
import t, { type Test } from 'tap'
import { addQueryObserver, type SettledQuery } from '../../lib/db-observer.js'
import { createDatabase } from '../helper.js'

async function connect(t: Test) {
  const sql = postgres(await createDatabase(), { max: 2, onnotice: () => {}, transform: postgres.camel })
  t.teardown(() => sql.end())
  return sql
}

function record(t: Test, sql: postgres.Sql) {
  const seen: (SettledQuery & { startedIn: unknown })[] = []
  const context = new AsyncLocalStorage<string>()
  const remove = addQueryObserver(sql, () => {
    const startedIn = context.getStore()
    return (settled) => seen.push({ ...settled, startedIn })
  })
  t.teardown(remove)
  return { seen, context, remove }
}

t.test(
  'each executed query is seen once, with its text, command or error, in its caller context',
  async (t) => {
    const sql = await connect(t)
    const { seen, context } = record(t, sql)
    const fragment = sql`where n > ${1}`
    await context.run('request-1', async () => {
      await sql`select n from generate_series(1, 3) as n ${fragment}`
    })
    await t.rejects(sql`select * from no_such_table`)
    await sql.begin(async (tx) => {
      await tx`select 1 as one`
    })
    // A new connection first runs postgres.js's own type lookup: observed too, and left aside here.
    const select = seen.filter((s) => s.text === 'select n from generate_series(1, 3) as n where n > $1')
    t.equal(select.length, 1, 'seen once')
    t.equal(select[0]?.command, 'SELECT')
    t.equal(select[0]?.error, undefined)
    t.equal(select[0]?.startedIn, 'request-1', 'the observer starts in the caller async context')
    const failed = seen.find((s) => s.text === 'select * from no_such_table')
    t.equal(failed?.command, undefined)
    t.match(String((failed?.error as Error | undefined)?.message), /no_such_table/)
    const inTransaction = seen.map((s) => s.text.toLowerCase())
    t.ok(
      inTransaction.some((text) => text.startsWith('begin')),
      'BEGIN is a query too',
    )
    t.ok(inTransaction.includes('select 1 as one'))
    t.ok(inTransaction.includes('commit'))
    t.notOk(
      seen.some((s) => s.text === 'where n > $1'),
      'a fragment inside another query is not a query',
    )
  },
)

t.test('removing the last observer restores postgres.js untouched', async (t) => {
  const sql = await connect(t)
  const proto = Object.getPrototypeOf(sql`select 1`) as { handle: unknown }
  const original = proto.handle
  const first = record(t, sql)
  const second = record(t, sql)
  t.not(proto.handle, original, 'patched while observed')
  await sql`select 1` // the pool's first connection: its type lookup comes first
  first.seen.length = 0
  second.seen.length = 0
  await sql`select 1`
  t.equal(first.seen.length, 1)
  t.equal(second.seen.length, 1, 'every observer sees the query')
  first.remove()
  await sql`select 2`
  t.equal(first.seen.length, 1, 'a removed observer sees nothing more')
  t.equal(second.seen.length, 2)
  second.remove()
  t.equal(proto.handle, original, 'restored when no observer is left')
  await sql`select 3`
  t.equal(second.seen.length, 2)
})

t.test('an observer that throws neither hangs nor fails the query, nor ends its connection', async (t) => {
  const sql = await connect(t)
  const warnings: string[] = []
  const onWarning = (warning: Error) => warnings.push(warning.message)
  process.on('warning', onWarning)
  t.teardown(() => process.off('warning', onWarning))
  const seen: SettledQuery[] = []
  const removeBroken = addQueryObserver(sql, () => () => {
    throw new Error('observer broke at the end')
  })
  const removeBrokenStart = addQueryObserver(sql, () => {
    throw new Error('observer broke at the start')
  })
  const { remove } = record(t, sql)
  const removeSeen = addQueryObserver(sql, () => (settled) => seen.push(settled))
  t.teardown(() => {
    removeBroken()
    removeBrokenStart()
    removeSeen()
  })
  const timeout = new Promise((resolve) => setTimeout(() => resolve('hung'), 5000))
  t.same(await Promise.race([sql`select 1 as one`, timeout]), [{ one: 1 }], 'the query settles')
  await t.rejects(sql`select * from no_such_table`, { code: '42P01' }, 'a failure keeps its own error')
  t.same(await sql`select 2 as two`, [{ two: 2 }], 'the connection lives on')
  t.ok(
    seen.some((s) => s.text === 'select 2 as two'),
    'the other observers still see every query',
  )
  await new Promise((resolve) => setImmediate(resolve))
  t.ok(
    warnings.some((w) => /observer broke at the end/.test(w)),
    'the failure is reported as a warning',
  )
  t.ok(warnings.some((w) => /observer broke at the start/.test(w)))
  remove()
})

/** Settles with the query's result, or 'hung' when it does not settle within a few seconds. */
const settledWithin = <T>(query: Promise<T>) =>
  Promise.race([
    // Awaited from a callback, as a handler does: a throw from .then() becomes this rejection.
    Promise.resolve()
      .then(() => query)
      .then(
        (value) => value,
        (error: Error) => `rejected: ${error.message}`,
      ),
    new Promise<string>((resolve) => setTimeout(() => resolve('hung'), 3000).unref()),
  ])

t.test('bug: an observer that throws broke the query, or hung it and its connection', async (t) => {
  const sql = await connect(t)
  await sql`select 1` // the connection's type lookup first
  const uncaught: unknown[] = []
  const keep = (error: unknown) => uncaught.push(error)
  process.on('uncaughtException', keep)
  t.teardown(() => process.off('uncaughtException', keep))
  const { seen } = record(t, sql)
  const removeStart = addQueryObserver(sql, () => {
    throw new Error('observer failed as the query started')
  })
  t.teardown(removeStart)
  t.same(await settledWithin(sql`select 1 as one`), [{ one: 1 }], 'a start that throws')
  removeStart()
  const removeEnd = addQueryObserver(sql, () => () => {
    throw new Error('observer failed as the query settled')
  })
  t.teardown(removeEnd)
  t.same(await settledWithin(sql`select 2 as two`), [{ two: 2 }], 'an end that throws')
  t.match(await settledWithin(sql`select * from no_such_table`), /^rejected: .*no_such_table/)
  removeEnd()
  t.same(await settledWithin(sql`select 3 as three`), [{ three: 3 }], 'the connection still answers')
  t.same(uncaught, [], 'nothing thrown out of postgres.js')
  t.same(
    seen.map((s) => s.text),
    ['select 1 as one', 'select 2 as two', 'select * from no_such_table', 'select 3 as three'],
    'the other observers saw every query',
  )
})

t.test('bug: a cursor never settled its observation, a describe settled twice', async (t) => {
  const sql = await connect(t)
  await sql`select 1`
  const { seen } = record(t, sql)
  const batches: unknown[] = []
  for await (const rows of sql`select n from generate_series(1, 5) as n`.cursor(2)) batches.push(rows)
  t.equal(batches.length, 3, 'three batches')
  for await (const _ of sql`select n from generate_series(1, 5) as n where n > ${0}`.cursor(2)) break
  const described = await sql`select ${1}::int as n`.describe()
  t.ok(described.columns, 'describe answers the statement')
  await sql`select 'after' as done`
  const texts = seen.map((s) => s.text).filter((text) => !text.includes('pg_catalog'))
  t.same(
    texts,
    [
      'select n from generate_series(1, 5) as n',
      'select n from generate_series(1, 5) as n where n > $1',
      'select $1::int as n',
      "select 'after' as done",
    ],
    'each once: a cursor read to its end, one left early, a describe',
  )
  t.ok(
    seen.every((s) => s.error === undefined),
    'none failed',
  )
})
