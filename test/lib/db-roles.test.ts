import { once } from 'node:events'
import { type AddressInfo, connect as connectTcp, createServer } from 'node:net'
import postgres from 'postgres'
import t from 'tap'
import { type CliIo, runCli } from '../../cli.js'
import { loadConfig } from '../../lib/config.js'
import { createRoles } from '../../lib/db-roles.js'
import { createLogger } from '../../lib/logger.js'
import {
  build,
  createDatabase,
  PRODUCTION_MAIL,
  signUp,
  TEST_DATA_KEYS,
  TEST_JWT_SECRET,
  testRoleUrls,
} from '../helper.js'

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
    await refused(
      'a back-dated audit row',
      () => runtime`insert into audit_events (event, created_at) values ('test.backdated', '2001-01-01')`,
    )
    await refused('CREATE ROLE', () => runtime`create role evil`)
  },
)

t.test('production refuses a superuser runtime connection unless explicitly allowed', async (t) => {
  const admin = await createDatabase() // the test server's superuser, on a fresh database
  const production = { NODE_ENV: 'production', JWT_SECRET: TEST_JWT_SECRET, DATABASE_URL: admin }
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
    ['SELECT'],
    'on audit_events the runtime role reads the whole table, and no UPDATE, DELETE or TRUNCATE',
  )
  const insertable = await check<{ column: string }[]>`
    select column_name as column from information_schema.column_privileges
    where grantee = 'bulwark_cli_app' and table_name = 'audit_events' and privilege_type = 'INSERT'
    order by 1
  `
  t.same(
    insertable.map((c) => c.column),
    ['detail', 'event', 'id', 'ip', 'request_id', 'user_agent', 'user_id'],
    'it inserts every column but created_at, which the database stamps',
  )
  // The service runs as the runtime role on that database.
  const app = await build(t, { env: { DATABASE_URL: config.DATABASE_URL ?? '', MIGRATE_ON_START: 'false' } })
  t.ok((await signUp(app, 'clirole')).accessToken)
})

t.test(
  'a superuser runtime connection found only after a database outage at boot serves nothing',
  async (t) => {
    // The database's address refuses connections at boot; then a relay to the test server opens there.
    const target = new URL(await createDatabase())
    const probe = createServer().listen(0, '127.0.0.1')
    await once(probe, 'listening')
    const port = (probe.address() as AddressInfo).port
    probe.close()
    await once(probe, 'close')
    const url = new URL(target)
    url.port = String(port)
    const app = await build(t, {
      env: {
        NODE_ENV: 'production',
        JWT_SECRET: TEST_JWT_SECRET,
        DATABASE_URL: url.toString(),
        MIGRATE_ON_START: 'false',
        DATABASE_CONNECT_TIMEOUT_SECONDS: '1',
      },
    })
    // The database comes back: the connection turns out to be a superuser's.
    const relay = createServer((client) => {
      const upstream = connectTcp(Number(target.port || 5432), target.hostname)
      client.pipe(upstream).pipe(client)
      client.on('error', () => upstream.destroy())
      upstream.on('error', () => client.destroy())
    }).listen(port, '127.0.0.1')
    await once(relay, 'listening')
    t.teardown(() => relay.close())
    const res = await app.inject({ method: 'POST', url: '/api/auth/register', payload: {} })
    t.equal(res.statusCode, 503, 'requests are refused, not served as a superuser')
    t.match(res.json(), { type: 'urn:bulwark:problem:not-ready' })
    t.equal((await app.inject('/health/ready')).statusCode, 503, 'and the instance never turns ready')
  },
)

t.test(
  'role passwords are literals even where backslashes are escapes (no injection through a password)',
  async (t) => {
    const admin = await createDatabase()
    const database = new URL(admin).pathname.slice(1)
    const sql = connect(admin)
    t.teardown(async () => {
      await sql.unsafe('drop role if exists bulwark_inj_evil')
      await sql.end()
    })
    await sql.unsafe(`alter database ${database} set standard_conforming_strings = off`)
    const fresh = connect(admin) // a new session picks up the database's setting
    t.teardown(() => fresh.end())
    const hostile = "\\', $$x$$) union select $$create role bulwark_inj_evil login superuser$$ --"
    await createRoles(fresh, {
      migrationRole: 'bulwark_inj_owner',
      migrationPassword: hostile,
      runtimeRole: 'bulwark_inj_app',
      runtimePassword: 'plain',
      database,
    })
    const [evil] = await sql`select 1 from pg_roles where rolname = 'bulwark_inj_evil'`
    t.notOk(evil, 'no role was created from the password')
    const [owner] = await sql`select rolsuper from pg_roles where rolname = 'bulwark_inj_owner'`
    t.equal(owner?.rolsuper, false)
  },
)

t.test(
  'create-roles will not send an administrator password in plaintext to another host in production',
  async (t) => {
    const config = loadConfig({
      NODE_ENV: 'production',
      JWT_SECRET: TEST_JWT_SECRET,
      ...TEST_DATA_KEYS,
      ...PRODUCTION_MAIL,
      DATABASE_URL: 'postgres://bulwark_app:pw@127.0.0.1:5432/bulwark',
      DATABASE_MIGRATION_URL: 'postgres://bulwark_owner:pw@127.0.0.1:5432/bulwark',
    })
    const err: string[] = []
    const io: CliIo = {
      stdout: () => {},
      stderr: (l) => err.push(l),
      stdin: async () => 'postgres://admin:TopSecret@192.0.2.2:5432/bulwark\n',
    }
    t.equal(await runCli(['create-roles', '--admin-url', '-'], config, io, silent), 1)
    t.match(err[0], /^create-roles: the administrator URL is invalid: a non-loopback host needs sslmode/)
    t.notMatch(err.join(' '), /TopSecret/, 'the URL is never echoed')
  },
)

t.test(
  'bug: parallel test files creating the same roles failed with "tuple concurrently updated"',
  async (t) => {
    const admin = await createDatabase()
    const database = new URL(admin).pathname.slice(1)
    const names = {
      migrationRole: 'bulwark_race_owner',
      migrationPassword: 'race-owner',
      runtimeRole: 'bulwark_race_app',
      runtimePassword: 'race-app',
      database,
    }
    // Eight sessions at once, as replicas booting together or tap's parallel files would.
    const sessions = Array.from({ length: 8 }, () => connect(admin))
    const check = connect(admin)
    t.teardown(() => Promise.all([check, ...sessions].map((s) => s.end())))
    const outcomes = await Promise.allSettled(sessions.map((s) => createRoles(s, names)))
    const failed = outcomes.filter((o) => o.status === 'rejected')
    t.same(
      failed.map((o) => String((o as PromiseRejectedResult).reason)),
      [],
      'every concurrent run succeeds',
    )
    const [app] = await check`select rolcanlogin from pg_roles where rolname = 'bulwark_race_app'`
    t.equal(app?.rolcanlogin, true)
  },
)
