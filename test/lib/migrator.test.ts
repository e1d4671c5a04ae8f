import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import t, { type Test } from 'tap'
import { migrate, migrationsCurrent, readMigrations } from '../../lib/migrator.js'
import { createDatabase } from '../helper.js'

function fixtureDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-migrations-'))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  return dir
}

async function connect(t: Test) {
  const sql = postgres(await createDatabase(), { max: 4, onnotice: () => {}, transform: postgres.camel })
  t.teardown(() => sql.end())
  return sql
}

t.test('the shipped migrations apply to a fresh database, and a re-run applies nothing', async (t) => {
  const sql = await connect(t)
  const shipped = readMigrations()
  t.ok(shipped.length > 0)
  const first = await migrate(sql)
  t.same(
    first.applied,
    shipped.map((m) => m.name),
  )
  t.ok(await migrationsCurrent(sql, shipped.at(-1)?.id ?? 0))
  const second = await migrate(sql)
  t.same(second.applied, [])
  const rows = await sql`select id, name from schema_migrations order by id`
  t.same(
    rows.map((r) => r.name),
    shipped.map((m) => m.name),
  )
})

t.test('two runners started together apply each migration exactly once', async (t) => {
  const url = await createDatabase()
  const a = postgres(url, { max: 2, onnotice: () => {} })
  const b = postgres(url, { max: 2, onnotice: () => {} })
  t.teardown(async () => Promise.all([a.end(), b.end()]))
  const dir = fixtureDir({
    '0001_one.sql': 'create table one (id int primary key); select pg_sleep(0.2);',
    '0002_two.sql': 'create table two (id int primary key);',
  })
  const [ra, rb] = await Promise.all([migrate(a, readMigrations(dir)), migrate(b, readMigrations(dir))])
  t.same([...ra.applied, ...rb.applied].sort(), ['0001_one.sql', '0002_two.sql'], 'each file once, no error')
  const [count] = await a`select count(*)::int as n from schema_migrations`
  t.equal(count?.n, 2)
})

t.test('a failing migration rolls back entirely and is not recorded', async (t) => {
  const sql = await connect(t)
  const dir = fixtureDir({
    '0001_ok.sql': 'create table ok (id int);',
    '0002_bad.sql': 'create table half (id int); select * from no_such_table;',
  })
  await t.rejects(migrate(sql, readMigrations(dir)), /no_such_table/)
  const [half] = await sql`select to_regclass('half') as t`
  t.equal(half?.t, null, 'the statement before the failure was rolled back')
  const rows = await sql`select name from schema_migrations`
  t.same(
    rows.map((r) => r.name),
    ['0001_ok.sql'],
  )
  t.notOk(await migrationsCurrent(sql, 2))
})

t.test('an applied migration that was edited afterwards is refused', async (t) => {
  const sql = await connect(t)
  await migrate(sql, readMigrations(fixtureDir({ '0001_a.sql': 'create table a (id int);' })))
  const edited = readMigrations(fixtureDir({ '0001_a.sql': 'create table a (id bigint);' }))
  await t.rejects(migrate(sql, edited), /changed after it was applied/)
})

t.test('file names must be numbered in sequence', async (t) => {
  t.throws(() => readMigrations(fixtureDir({ 'init.sql': 'select 1;' })), /must look like 0001_name\.sql/)
  t.throws(() => readMigrations(fixtureDir({ '0001_a.sql': '', '0003_c.sql': '' })), /out of sequence/)
})

t.test('readiness check fails when the migrations table is missing', async (t) => {
  const sql = await connect(t)
  await t.rejects(migrationsCurrent(sql, 1), { code: '42P01' })
})
