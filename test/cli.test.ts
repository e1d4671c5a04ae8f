import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import t, { type Test } from 'tap'
import { type CliIo, databaseLine, runCli } from '../cli.js'
import { loadConfig } from '../lib/config.js'
import { createFieldCipher } from '../lib/field-crypto.js'
import { createLogger } from '../lib/logger.js'
import { MIGRATIONS_DIR, readMigrations } from '../lib/migrator.js'
import { build, createDatabase, databaseUrl, signUp, testConfig, testRoleUrls } from './helper.js'

/** A URL as the CLI shows it: any password as *** (the embedded test database has one; CI's has none). */
const shown = (url: string) => url.replace(/^(\w+:\/\/[^:@/]+):[^@/]*@/, '$1:***@')

/** An io that records what a command prints; stdin is never read by these commands. */
function captureIo() {
  const out: string[] = []
  const err: string[] = []
  const io: CliIo = {
    stdout: (line) => out.push(line),
    stderr: (line) => err.push(line),
    stdin: async () => '',
  }
  return { io, out, err }
}

const configFor = (url: string) => loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: url })
const silent = createLogger({ LOG_LEVEL: 'silent' })

t.test('no command prints usage on stderr and succeeds', async (t) => {
  const { io, out, err } = captureIo()
  // An unreachable database: usage must not try to connect.
  const code = await runCli([], configFor('postgres://nobody@127.0.0.1:1/none'), io, silent)
  t.equal(code, 0)
  t.same(out, [])
  t.equal(err.length, 1)
  t.match(err[0], /^usage: npm run cli -- <command> \[options\]\ncommands:\n/)
  t.match(err[0], /^ {2}migrate +apply pending migrations/m, 'lists the migrate command')
  t.match(err[0], /^ {2}create-roles +/m, 'lists the create-roles command')
  t.match(err[0], /^ {2}rotate-data-key +/m, 'lists the rotate-data-key command')
})

t.test('an unknown command fails, names it and shows usage', async (t) => {
  const { io, out, err } = captureIo()
  const code = await runCli(
    ['frobnicate', '--now'],
    configFor('postgres://nobody@127.0.0.1:1/none'),
    io,
    silent,
  )
  t.equal(code, 1)
  t.same(out, [])
  t.equal(err.length, 1)
  t.match(err[0], /^unknown command: frobnicate\nusage: npm run cli -- <command>/)
})

t.test('migrate applies the shipped migrations once, then reports the database up to date', async (t) => {
  const url = await createDatabase()
  const config = configFor(url)
  const shipped = readMigrations()
  const names = shipped.map((m) => m.name)
  t.equal(names[0], '0001_audit_events.sql')

  const first = captureIo()
  t.equal(await runCli(['migrate'], config, first.io, silent), 0)
  t.same(first.out, [`applied ${names.join(', ')}`], 'names every migration it applied')
  t.match(first.out[0], /^applied 0001_audit_events\.sql\b/)
  t.same(first.err, [`database: ${shown(url)}`], 'stderr names the database, nothing else')

  const second = captureIo()
  t.equal(await runCli(['migrate'], config, second.io, silent), 0)
  t.same(second.out, ['database is up to date'])
  t.same(second.err, [`database: ${shown(url)}`])

  const sql = postgres(url, { max: 1, onnotice: () => {} })
  t.teardown(() => sql.end())
  const rows = await sql<{ id: number; name: string; checksum: string }[]>`
    select id, name, checksum from schema_migrations order by id
  `
  t.same(
    rows.map((r) => ({ id: r.id, name: r.name })),
    shipped.map((m) => ({ id: m.id, name: m.name })),
    'each migration is recorded once',
  )
  const audit = readFileSync(join(MIGRATIONS_DIR, '0001_audit_events.sql'))
  t.match(rows[0], {
    id: 1,
    name: '0001_audit_events.sql',
    checksum: createHash('sha256').update(audit).digest('hex'),
  })
})

t.test('migrate against a database that does not exist fails with the reason on stderr', async (t) => {
  const { io, out, err } = captureIo()
  const missing = databaseUrl(`bulwark_missing_${process.pid}`)
  const code = await runCli(['migrate'], configFor(missing), io, silent)
  t.equal(code, 1)
  t.same(out, [])
  t.same(err.length, 2)
  t.equal(err[0], `database: ${shown(missing)}`)
  t.match(err[1], /^migrate: database "bulwark_missing_\d+" does not exist$/)
})

t.test(
  'create-user: makes the first admin from a password on stdin, and refuses what registration refuses',
  async (t) => {
    const url = await createDatabase()
    const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: url, BCRYPT_COST: '4' })
    await runCli(['migrate'], config, captureIo().io, silent)
    const run = async (args: string[], stdin: string) => {
      const { io, out, err } = captureIo()
      io.stdin = async () => stdin
      return { code: await runCli(['create-user', ...args], config, io, silent), out, err }
    }
    const admin = await run(
      ['--username=root_admin', '--email=Root@Example.com', '--role', 'admin'],
      'Sturdy-Admin-Keeper-91\nignored\n',
    )
    t.equal(admin.code, 0)
    t.match(admin.out, [/^created admin root_admin \([0-9a-f-]{36}\)$/])
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    t.teardown(() => sql.end())
    const [row] = await sql`select id, role, email, password_hash from users where username = 'root_admin'`
    t.match(row, { role: 'admin', email: /^enc:v1:/ })
    const place = { table: 'users', column: 'email', rowId: String(row?.id) }
    t.equal(createFieldCipher(configFor(url)).decrypt(String(row?.email), place), 'root@example.com')
    t.match(row?.password_hash, /^\$bw1\$\$2b\$04\$/, 'peppered bcrypt, only the first line of stdin used')
    t.equal((await sql`select count(*)::int as n from audit_events where event = 'auth.register'`)[0]?.n, 1)

    const again = await run(
      ['--username', 'ROOT_ADMIN', '--email', 'other@example.com', '--role', 'admin'],
      'Sturdy-Admin-Keeper-91\n',
    )
    t.equal(again.code, 1, 'an existing user is exit 1')
    t.same(again.err, [
      `database: ${shown(url)}`,
      'create-user: That username is taken. body.username is already in use',
    ])

    // The operator is told plainly; registration over HTTP answers 201 (test/routes/api/register-enumeration.test.ts).
    const sameEmail = await run(
      ['--username', 'root_two', '--email', 'ROOT@example.com'],
      'Sturdy-Admin-Keeper-91\n',
    )
    t.equal(sameEmail.code, 1, 'an existing email is exit 1')
    t.equal(sameEmail.err[1], 'create-user: That email is already registered. body.email is already in use')
    t.equal((await sql`select count(*)::int as n from users`)[0]?.n, 1, 'and no second user')

    const weak = await run(['--username', 'second', '--email', 'second@example.com'], 'weak\n')
    t.equal(weak.code, 1)
    t.match(weak.err[1], /password must be at least 15 characters/)
    const common = await run(['--username', 'second', '--email', 'second@example.com'], '1qaz2wsx3edc4rfv\n')
    t.equal(common.code, 1)
    t.match(common.err[1], /password is too common$/, 'the policy holds for operators too')
    const named = await run(
      ['--username', 'second', '--email', 'second@example.com'],
      'second-admin-account-2\n',
    )
    t.match(named.err[1], /body.password contains your username/)

    const badRole = await run(
      ['--username', 'third', '--email', 'third@example.com', '--role', 'root'],
      'Sturdy-Admin-Keeper-91\n',
    )
    t.equal(badRole.code, 1)
    t.match(badRole.err[0], /^create-user: role /)

    const unknownFlag = await run(['--username', 'fourth', '--admin', 'yes'], 'Sturdy-Admin-Keeper-91\n')
    t.equal(unknownFlag.code, 1)
    t.match(
      unknownFlag.err[0],
      /^create-user: Unknown option '--admin'\nusage: npm run cli -- create-user --username <name> --email <address> \[--role user\|admin\]\n/,
    )
    t.equal((await sql`select count(*)::int as n from users`)[0]?.n, 1, 'nothing else was created')
  },
)

/** A config that would start an embedded PostgreSQL in a fresh directory, if anything started one. */
function embeddedConfigIn(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-cli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', EMBEDDED_DB_DIR: join(dir, 'pg') })
  return { dir, config }
}

t.test('--help describes the tool and each command on stdout, without a database', async (t) => {
  const unreachable = configFor('postgres://nobody@127.0.0.1:1/none')
  for (const flag of ['--help', '-h', 'help']) {
    const { io, out, err } = captureIo()
    t.equal(await runCli([flag], unreachable, io, silent), 0)
    t.same(err, [])
    t.match(out[0], /^usage: npm run cli -- <command> \[options\]\ncommands:\n/)
    t.match(out[0], /^ {2}set-role +change an existing user's role/m, 'lists set-role')
    t.match(out[0], /--name value or --name=value/)
  }
  const expected: Record<string, RegExp> = {
    migrate: /^usage: npm run cli -- migrate\napply pending migrations/,
    'create-user':
      /^usage: npm run cli -- create-user --username <name> --email <address> \[--role user\|admin\]\n.*\noptions:\n {2}--username <name> +3–32 characters/,
    'set-role':
      /^usage: npm run cli -- set-role --username <name> --role user\|admin\n.*\noptions:\n {2}--username <name> +the user/,
    'create-roles': /^usage: npm run cli -- create-roles \[--admin-url -\]\n/,
    'rotate-data-key': /^usage: npm run cli -- rotate-data-key\nre-encrypt/,
  }
  for (const [name, pattern] of Object.entries(expected)) {
    const { io, out, err } = captureIo()
    t.equal(await runCli([name, '--help'], unreachable, io, silent), 0, name)
    t.same(err, [], `${name}: nothing on stderr, no database line`)
    t.match(out, [pattern], `${name} --help`)
  }
  const { io, out } = captureIo()
  t.equal(await runCli(['set-role', '--username', 'x', '-h'], unreachable, io, silent), 0)
  t.match(out[0], /^usage: npm run cli -- set-role/, '-h among other options')
})

t.test('arguments are checked before any database is started', async (t) => {
  const { dir, config } = embeddedConfigIn(t)
  const cases: [string[], RegExp][] = [
    [
      ['create-user', '--username', 'someone', '--bogus', 'x'],
      /^create-user: Unknown option '--bogus'\nusage: /,
    ],
    [['create-user', '--username'], /^create-user: Option '--username <value>' argument missing\nusage: /],
    [
      ['create-user', '--username', '--email', 'a@example.com'],
      /^create-user: Option '--username' argument is ambiguous\. /,
    ],
    [
      ['set-role', '--username=alice', '--username=bob', '--role=admin'],
      /^set-role: Option '--username' is given more than once\n/,
    ],
    [['set-role', '--username', 'alice', '--role', 'root'], /^set-role: role /],
    [['set-role', '--role', 'admin'], /^set-role: username is required$/],
    [['set-role', '--username', 'a', '--role', 'admin'], /^set-role: username must be 3–32 characters/],
    [['migrate', 'now'], /^migrate: Unexpected argument 'now'/],
    [['create-roles', '--admin-url', 'postgres://x'], /^create-roles: expected --admin-url -$/],
    // Regression: this setting was checked only after the embedded PostgreSQL had started.
    [['create-roles'], /^create-roles: DATABASE_MIGRATION_URL and DATABASE_URL must both be set$/],
    [['create-user', '--username', 'someone', '--email', 'nope'], /^create-user: email /],
  ]
  for (const [argv, pattern] of cases) {
    const { io, out, err } = captureIo()
    io.stdin = async () => 'A-long-enough-passphrase-77\n'
    t.equal(await runCli(argv, config, io, silent), 1, argv.join(' '))
    t.same(out, [])
    t.match(err, [pattern], argv.join(' '))
  }
  t.same(readdirSync(dir), [], 'no embedded PostgreSQL was started (nothing was written beside it)')
})

t.test('the database line: the URL without its password, or the embedded directory', async (t) => {
  const { config } = embeddedConfigIn(t)
  t.match(
    databaseLine(config, {}),
    /^database: embedded PostgreSQL in \/.*\/pg$/,
    'outside the working directory: absolute',
  )
  t.equal(
    databaseLine(loadConfig({ NODE_ENV: 'test' }), {}),
    'database: embedded PostgreSQL in .data/postgres',
    'the default, relative to the working directory',
  )
  const withSecrets = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: 'postgres://bulwark_app:S3cret%21@db.internal:5432/bulwark?sslmode=require',
    DATABASE_MIGRATION_URL: 'postgres://bulwark_owner@db.internal/bulwark?password=0wnerSecret',
  })
  t.equal(
    databaseLine(withSecrets, {}),
    'database: postgres://bulwark_app:***@db.internal:5432/bulwark?sslmode=require',
  )
  const migration = databaseLine(withSecrets, { migrationConnection: true })
  t.match(
    migration,
    / \(migrations through postgres:\/\/bulwark_owner@db\.internal\/bulwark\?password=\*\*\*\)$/,
  )
  t.notMatch(migration, /S3cret|0wnerSecret/)
})

t.test('the database line shows no part of a password, whatever the URL looks like', async (t) => {
  // Regression: sslpassword (the client key's passphrase) and ?PASSWORD= were printed as given, and
  // a password with an unencoded # or ? after digits (or starting with /) ended the authority early,
  // so WHATWG URL found no password and printed the whole string.
  const cases: [url: string, shown: string | RegExp][] = [
    [
      'postgres://u@db/app?sslpassword=k3yPass&sslmode=require',
      'postgres://u@db/app?sslpassword=***&sslmode=require',
    ],
    ['postgres://u@db/app?PASSWORD=S3cret', 'postgres://u@db/app?PASSWORD=***'],
    ['postgres://u@db/app?options=-c%20password%3DS3cret', 'postgres://u@db/app?options=***'],
    ['postgresql://u:S3cret@db/app#S3cret', 'postgresql://u:***@db/app'],
    ['postgres://u:123#S3cret@db:5432/app', /^\(a URL that cannot be shown/],
    ['postgres://u:123?S3cret@db:5432/app', /^\(a URL that cannot be shown/],
    ['postgres://u:/S3cret@db:5432/app', /^\(a URL that cannot be shown/],
    ['postgres://u:S3cret@h1:5432,h2:5432/app', '(an unparsable URL)'],
  ]
  for (const [url, shown] of cases) {
    const line = databaseLine(loadConfig({ NODE_ENV: 'test', DATABASE_URL: url }), {})
    t.notMatch(line, /S3cret|k3yPass|123/, url)
    const shownUrl = line.replace(/^database: /, '')
    if (typeof shown === 'string') t.equal(shownUrl, shown, url)
    else t.match(shownUrl, shown, url)
  }
})

t.test('set-role: promotes and demotes through the admin rules, audited, sessions ended', async (t) => {
  const app = await build(t)
  const config = await testConfig()
  const { DATABASE_URL: runtimeUrl } = await testRoleUrls()
  const password = decodeURIComponent(new URL(runtimeUrl).password)
  const alice = await signUp(app, 'alice')
  const run = async (...argv: string[]) => {
    const { io, out, err } = captureIo()
    return { code: await runCli(['set-role', ...argv], config, io, silent), out, err }
  }

  const promoted = await run(`--username=${alice.username.toUpperCase()}`, '--role=admin')
  t.equal(promoted.code, 0, promoted.err.join('\n'))
  t.same(promoted.out, [`${alice.username} (${alice.id}) is now admin (was user); their sessions were ended`])
  t.equal(promoted.err.length, 1)
  t.match(promoted.err[0], /^database: postgres:\/\/bulwark\w*:\*\*\*@/, 'the database, password hidden')
  t.notOk(promoted.err[0]?.includes(password), 'never the password')
  t.equal((await alice.inject('/api/users/me')).statusCode, 401, 'the old session ended at once')
  const [row] = await app.sql`select role from users where id = ${alice.id}`
  t.equal(row?.role, 'admin')
  const audits = () =>
    app.sql`select user_id, detail from audit_events where event = 'admin.user.role_changed' order by id`
  t.match(await audits(), [{ user_id: null, detail: { targetUserId: alice.id, from: 'user', to: 'admin' } }])

  const again = await run('--username', alice.username, '--role', 'admin')
  t.equal(again.code, 0)
  t.same(again.out, [`${alice.username} (${alice.id}) is already admin`])
  t.equal((await audits()).length, 1, 'no change, no record')

  const last = await run('--username', alice.username, '--role', 'user')
  t.equal(last.code, 1)
  t.equal(last.err[1], 'set-role: This would leave no enabled admin.')
  t.equal((await app.sql`select role from users where id = ${alice.id}`)[0]?.role, 'admin')

  const bob = await signUp(app, 'bob')
  t.equal((await run('--username', bob.username, '--role', 'admin')).code, 0)
  const demoted = await run('--username', alice.username, '--role', 'user')
  t.equal(demoted.code, 0, 'with another admin, demotion is allowed')
  t.match(demoted.out, [/is now user \(was admin\)/])

  const missing = await run('--username', 'nobody_here', '--role', 'admin')
  t.equal(missing.code, 1)
  t.same(missing.out, [])
  t.equal(missing.err[1], 'set-role: there is no user nobody_here')
})

t.test('set-role: two demotions of the last two admins at once leave one admin', async (t) => {
  const app = await build(t)
  const config = await testConfig()
  const [carol, dave] = [await signUp(app, 'carol'), await signUp(app, 'dave')]
  await app.sql`update users set role = 'user' where role = 'admin'`
  await app.sql`update users set role = 'admin' where id in ${app.sql([carol.id, dave.id])}`
  const run = async (username: string) => {
    const { io, err } = captureIo()
    return {
      code: await runCli(['set-role', '--username', username, '--role', 'user'], config, io, silent),
      err,
    }
  }
  const results = await Promise.all([run(carol.username), run(dave.username)])
  t.same(results.map((r) => r.code).sort(), [0, 1], 'one succeeds, one is refused')
  t.match(results.find((r) => r.code === 1)?.err, [
    /^database: /,
    'set-role: This would leave no enabled admin.',
  ])
  const [admins] = await app.sql`select count(*)::int as n from users where role = 'admin' and not disabled`
  t.equal(admins?.n, 1)
})
