import postgres from 'postgres'
import t from 'tap'
import { type CliIo, runCli } from '../../cli.js'
import { loadConfig } from '../../lib/config.js'
import { createLogger } from '../../lib/logger.js'
import { build, createDatabase, signUp, TEST_DATA_KEYS, testRoleUrls } from '../helper.js'

const silent = createLogger({ LOG_LEVEL: 'silent' })
const connect = (url: string) => postgres(url, { max: 1, onnotice: () => {} })

t.test(
  'as the runtime role, the audit log is append-only and DDL, TRUNCATE and ownership are out of reach',
  async (t) => {
    const app = await build(t) // migrations ran through the migration role and granted the runtime role
    await signUp(app, 'lp') // the service works end to end with only the runtime privileges
    const { DATABASE_URL } = await testRoleUrls()
    const runtime = connect(DATABASE_URL)
    t.teardown(() => runtime.end())
    const [me] = await runtime<
      { superuser: boolean }[]
    >`select rolsuper as superuser from pg_roles where rolname = current_user`
    t.equal(me?.superuser, false)
    await runtime`insert into audit_events (event) values ('test.append')`
    t.ok(
      (await runtime`select 1 from audit_events where event = 'test.append'`).length,
      'INSERT and SELECT are allowed',
    )
    const refused = async (name: string, statement: () => Promise<unknown>) =>
      t.rejects(statement(), { code: '42501' }, `${name} is refused (insufficient_privilege)`)
    await refused('UPDATE audit_events', () => runtime`update audit_events set event = 'forged'`)
    await refused('DELETE audit_events', () => runtime`delete from audit_events`)
    await refused('TRUNCATE audit_events', () => runtime`truncate audit_events`)
    await refused('TRUNCATE users', () => runtime`truncate users cascade`)
    await refused('CREATE TABLE', () => runtime`create table evil (id int)`)
    await refused('ALTER TABLE', () => runtime`alter table users add column evil text`)
    await refused('DROP TABLE', () => runtime`drop table comments`)
    await refused('writing schema_migrations', () => runtime`delete from schema_migrations`)
    await refused('CREATE ROLE', () => runtime`create role evil`)
  },
)

t.test('production refuses a superuser runtime connection unless explicitly allowed', async (t) => {
  const admin = await createDatabase() // the test server's superuser, on a fresh database
  const production = { NODE_ENV: 'production', JWT_SECRET: 'p'.repeat(40), DATABASE_URL: admin }
  await t.rejects(build(t, { env: production }), {
    name: 'ConfigError',
    message: /^DATABASE_URL is invalid: the runtime connection is a superuser/,
  })
  const app = await build(t, { env: { ...production, DATABASE_ALLOW_SUPERUSER: 'true' } })
  t.equal((await app.inject('/health/ready')).statusCode, 200, 'allowed on purpose, it starts')
})

t.test('cli create-roles makes both roles idempotently; migrate grants the runtime role', async (t) => {
  const admin = await createDatabase()
  const urlAs = (role: string) => {
    const url = new URL(admin)
    url.username = role
    url.password = `${role}-pw`
    return url.toString()
  }
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: urlAs('bulwark_cli_app'),
    DATABASE_MIGRATION_URL: urlAs('bulwark_cli_owner'),
    ...TEST_DATA_KEYS,
  })
  const out: string[] = []
  const err: string[] = []
  const io: CliIo = {
    stdout: (l) => out.push(l),
    stderr: (l) => err.push(l),
    stdin: async () => `${admin}\n`,
  }
  for (let run = 1; run <= 2; run++) {
    t.equal(
      await runCli(['create-roles', '--admin-url', '-'], config, io, silent),
      0,
      `run ${run}: ${err.join(' ')}`,
    )
  }
  t.same(out.slice(0, 2), [
    'roles ready: bulwark_cli_owner (migrations), bulwark_cli_app (runtime)',
    'roles ready: bulwark_cli_owner (migrations), bulwark_cli_app (runtime)',
  ])
  t.equal(await runCli(['migrate'], config, io, silent), 0, err.join(' '))
  const check = connect(admin)
  t.teardown(() => check.end())
  const roles = await check<
    { rolname: string; rolsuper: boolean; rolcreaterole: boolean; rolcreatedb: boolean }[]
  >`
    select rolname, rolsuper, rolcreaterole, rolcreatedb from pg_roles
    where rolname in ('bulwark_cli_owner', 'bulwark_cli_app') order by rolname
  `
  t.same(
    roles.map((r) => [r.rolname, r.rolsuper || r.rolcreaterole || r.rolcreatedb]),
    [
      ['bulwark_cli_app', false],
      ['bulwark_cli_owner', false],
    ],
  )
  const [owner] =
    await check`select tableowner from pg_tables where tablename = 'users' and schemaname = 'public'`
  t.equal(owner?.tableowner, 'bulwark_cli_owner', 'the migration role owns the schema')
  const privileges = await check<{ privilege: string }[]>`
    select privilege_type as privilege from information_schema.role_table_grants
    where grantee = 'bulwark_cli_app' and table_name = 'audit_events' order by 1
  `
  t.same(
    privileges.map((p) => p.privilege),
    ['INSERT', 'SELECT'],
    'on audit_events the runtime role may only insert and read',
  )
  // The service runs as the runtime role on that database.
  const app = await build(t, { env: { DATABASE_URL: config.DATABASE_URL ?? '', MIGRATE_ON_START: 'false' } })
  t.ok((await signUp(app, 'clirole')).accessToken)
})
