import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import postgres from 'postgres'
import t from 'tap'
import { type CliIo, runCli } from '../cli.js'
import { loadConfig } from '../lib/config.js'
import { createFieldCipher } from '../lib/field-crypto.js'
import { createLogger } from '../lib/logger.js'
import { MIGRATIONS_DIR, readMigrations } from '../lib/migrator.js'
import { createDatabase, databaseUrl } from './helper.js'

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
  t.same(first.err, [])

  const second = captureIo()
  t.equal(await runCli(['migrate'], config, second.io, silent), 0)
  t.same(second.out, ['database is up to date'])
  t.same(second.err, [])

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
  t.equal(err.length, 1)
  t.match(err[0], /^migrate: database "bulwark_missing_\d+" does not exist$/)
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
      ['--username', 'root_admin', '--email', 'Root@Example.com', '--role', 'admin'],
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
    t.same(again.err, ['create-user: That username is taken. body.username is already in use'])

    const weak = await run(['--username', 'second', '--email', 'second@example.com'], 'weak\n')
    t.equal(weak.code, 1)
    t.match(weak.err[0], /password must be at least 15 characters/)
    const common = await run(['--username', 'second', '--email', 'second@example.com'], '1qaz2wsx3edc4rfv\n')
    t.equal(common.code, 1)
    t.match(common.err[0], /password is too common$/, 'the policy holds for operators too')
    const named = await run(
      ['--username', 'second', '--email', 'second@example.com'],
      'second-admin-account-2\n',
    )
    t.match(named.err[0], /body.password contains your username/)

    const badRole = await run(
      ['--username', 'third', '--email', 'third@example.com', '--role', 'root'],
      'Sturdy-Admin-Keeper-91\n',
    )
    t.equal(badRole.code, 1)
    t.match(badRole.err[0], /^create-user: role /)

    const unknownFlag = await run(['--username', 'fourth', '--admin', 'yes'], 'Sturdy-Admin-Keeper-91\n')
    t.equal(unknownFlag.code, 1)
    t.match(unknownFlag.err[0], /expected --username <value> --email <value> --role <value>/)
    t.equal((await sql`select count(*)::int as n from users`)[0]?.n, 1, 'nothing else was created')
  },
)
