import postgres from 'postgres'
import t from 'tap'
import { type CliIo, runCli } from '../../cli.js'
import { loadConfig } from '../../lib/config.js'
import { createFieldCipher } from '../../lib/field-crypto.js'
import { createLogger } from '../../lib/logger.js'
import { migrate, readMigrations } from '../../lib/migrator.js'
import { migrateDatabase } from '../../plugins/app/db.js'
import {
  build,
  createDatabase,
  enrolTotp,
  expectEvery,
  signUp,
  TEST_DATA_KEYS,
  TEST_PASSWORD,
  totpCode,
  verifyMfa,
} from '../helper.js'

const silent = createLogger({ LOG_LEVEL: 'silent' })
const key = (n: number) => Buffer.alloc(32, n).toString('base64')
const LOOKALIKE = `enc:v1:t1:${Buffer.alloc(40, 7).toString('base64url')}`

function captureIo() {
  const out: string[] = []
  const err: string[] = []
  const io: CliIo = { stdout: (l) => out.push(l), stderr: (l) => err.push(l), stdin: async () => '' }
  return { io, out, err }
}

const storedValues = async (sql: postgres.Sql) => {
  const rows = await sql<{ v: string }[]>`
    select email as v from users
    union all select ip from sessions union all select user_agent from sessions
    union all select ip from audit_events where ip is not null
    union all select secret from mfa_totp
  `
  return rows.map((r) => r.v).filter((v) => v !== null)
}

t.test(
  'rows from before encryption are encrypted by the migration step, then rotated to a new key',
  async (t) => {
    const url = await createDatabase()
    const sql = postgres(url, { max: 2, onnotice: () => {} })
    t.teardown(() => sql.end())
    // A database as the previous release left it: migrations 1-3 and plaintext personal data.
    await migrate(sql, readMigrations().slice(0, 3))
    const [user] = await sql<{ id: string }[]>`
    insert into users (username, email, password_hash, role)
    values ('olduser', 'olduser@example.com', '$2b$04$abcdefghijklmnopqrstuu3T3hIYQmGBPrbNT6r8dYm5xXYAUz7Bm', 'user')
    returning id
  `
    await sql`insert into sessions (user_id, idle_expires_at, expires_at, user_agent, ip)
            values (${user?.id ?? ''}, now() + interval '1 day', now() + interval '2 days', 'OldAgent/1.0', '198.51.100.4')`
    // A client chose a user agent that looks like our ciphertext, before encryption existed.
    await sql`insert into sessions (user_id, idle_expires_at, expires_at, user_agent)
            values (${user?.id ?? ''}, now() + interval '1 day', now() + interval '2 days', ${LOOKALIKE})`
    await sql`insert into audit_events (event, user_id, ip, user_agent) values ('auth.register', ${user?.id ?? ''}, '198.51.100.4', 'OldAgent/1.0')`

    const v1 = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: url, ...TEST_DATA_KEYS })
    const first = await migrateDatabase(v1, sql, createFieldCipher(v1))
    t.same(
      first.applied,
      readMigrations()
        .filter((m) => m.id >= 4)
        .map((m) => m.name),
      'migration 0004 and every one after it',
    )
    t.equal(first.encrypted, 6, 'every plaintext value, once')
    const [forged] = await sql<{ id: string; userAgent: string }[]>`
    select id, user_agent as "userAgent" from sessions where ip is null
  `
    const v1Cipher = createFieldCipher(v1)
    t.equal(
      v1Cipher.decrypt(forged?.userAgent ?? '', {
        table: 'sessions',
        column: 'user_agent',
        rowId: forged?.id ?? '',
      }),
      LOOKALIKE,
      'a plaintext user agent that looks like ciphertext was encrypted like any other',
    )
    expectEvery(t, await storedValues(sql), (v) => v.startsWith('enc:v1:t1:'), 'all under the active key')
    t.equal(
      (await migrateDatabase(v1, sql, createFieldCipher(v1))).encrypted,
      0,
      'a second run finds nothing',
    )

    // Login by email works on the migrated row: the step also wrote its blind index.
    const app = await build(t, { env: { DATABASE_URL: url, ...TEST_DATA_KEYS } })
    const reg = await app.inject({
      method: 'POST',
      url: '/api/auth/register',
      payload: { username: 'newuser', email: 'OLDUSER@example.com', password: TEST_PASSWORD },
    })
    // Answered like a new address (issue 15: no enumeration); the blind index found the owner.
    t.equal(reg.statusCode, 201)
    const [owner] = await sql`
      select a.user_id, (select count(*)::int from users where username = 'newuser') as created
      from audit_events a where a.event = 'auth.register.existing_email'
    `
    t.same(
      owner,
      { user_id: user?.id, created: 0 },
      'the migrated email is still unique through its blind index: its owner was found, no row made',
    )
    // A TOTP secret is personal data like the rest: rotated with it, and still good afterwards.
    const mfaUser = await signUp(app, 'totprot')
    const { secret } = await enrolTotp(app, mfaUser)

    // Rotation: a new first key; the old one still decrypts until every value has moved.
    const env = {
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      DATABASE_URL: url,
      DATA_INDEX_KEY: TEST_DATA_KEYS.DATA_INDEX_KEY,
    }
    const v2 = loadConfig({
      ...env,
      DATA_ENCRYPTION_KEYS: `k2:${key(5)},${TEST_DATA_KEYS.DATA_ENCRYPTION_KEYS}`,
    })
    const rotate = captureIo()
    t.equal(await runCli(['rotate-data-key'], v2, rotate.io, silent), 0, rotate.err.join(' '))
    t.ok(rotate.out.includes('users.email: 2 re-encrypted'), 'progress per column')
    t.ok(rotate.out.includes('mfa_totp.secret: 1 re-encrypted'), 'the TOTP secret too')
    t.match(rotate.out.at(-1), /^\d+ values re-encrypted; every value is under key k2/)
    expectEvery(t, await storedValues(sql), (v) => v.startsWith('enc:v1:k2:'), 'all under k2')
    const again = captureIo()
    t.equal(await runCli(['rotate-data-key'], v2, again.io, silent), 0)
    t.match(again.out.at(-1), /^0 values re-encrypted/, 'idempotent')

    // The old key can go: the service reads everything with the new key alone.
    const v3 = { DATA_ENCRYPTION_KEYS: `k2:${key(5)}`, DATA_INDEX_KEY: TEST_DATA_KEYS.DATA_INDEX_KEY }
    const rotated = await build(t, { env: { DATABASE_URL: url, ...v3 } })
    const login = await rotated.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { username: 'newuser@example.com', password: TEST_PASSWORD },
    })
    t.equal(login.statusCode, 401, 'no such login (the registration above created nothing)')
    const step = await rotated.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { username: mfaUser.username, password: TEST_PASSWORD },
    })
    const verified = await verifyMfa(rotated, step.json<{ mfaToken: string }>().mfaToken, totpCode(secret))
    t.equal(verified.statusCode, 200, 'the rotated TOTP secret still verifies codes')
    const cipher = createFieldCipher(v3)
    const [row] = await sql<
      { id: string; email: string }[]
    >`select id, email from users where username = 'olduser'`
    t.equal(
      cipher.decrypt(row?.email ?? '', { table: 'users', column: 'email', rowId: row?.id ?? '' }),
      'olduser@example.com',
    )

    // A key that is removed too early fails closed and says so.
    const early = loadConfig({ ...env, DATA_ENCRYPTION_KEYS: `k3:${key(6)}` })
    const fail = captureIo()
    t.equal(await runCli(['rotate-data-key'], early, fail.io, silent), 1)
    t.match(fail.err[1], /^rotate-data-key: cannot decrypt users\.email [0-9a-f-]{36}; left as it is$/)
    t.match(
      fail.err.at(-1),
      /^rotate-data-key: still not under k3: users\.email 2, .*mfa_totp\.secret 1/,
      'and exits 1 with what is left',
    )
  },
)
