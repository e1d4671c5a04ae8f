import { realpathSync } from 'node:fs'
import { constants } from 'node:os'
import { fileURLToPath } from 'node:url'
import { type Static, type TObject, Type } from '@sinclair/typebox'
import type { Logger } from 'pino'
import type { Sql } from 'postgres'
import {
  type OptionSpecs,
  optionLines,
  parseOptions,
  redactUrl,
  synopsis,
  UsageError,
} from './lib/cli-args.js'
import { configOrExit } from './lib/config.js'
import { MemoryCounterStore } from './lib/counter-store.js'
import { createRoles, rolesFromUrls } from './lib/db-roles.js'
import { transportProblem } from './lib/db-tls.js'
import { displayPath, resolveDatabase } from './lib/embedded-postgres.js'
import { AppError } from './lib/errors.js'
import { createFieldCipher } from './lib/field-crypto.js'
import { createLogger } from './lib/logger.js'
import { createAjv, fieldErrors } from './lib/validation.js'
import { createSql, migrateDatabase, OWNER_POOL } from './plugins/app/db.js'
import { type CreateUserInput, createUserInput, Role, Username } from './schemas/auth.js'
import type { Config } from './schemas/env.js'
import { setRoleByOperator } from './services/admin.js'
import { createAudit } from './services/audit.js'
import { reencrypt, staleCounts } from './services/data-keys.js'
import { createUser } from './services/users.js'

/** Operator commands (`npm run cli -- <command>`): migrate, create-user, set-role, create-roles, rotate-data-key. */

export interface CliIo {
  stdout: (line: string) => void
  stderr: (line: string) => void
  stdin: () => Promise<string>
}

interface RunContext<Input> {
  sql: Sql
  input: Input
  io: CliIo
  config: Config
}

interface Command<Input> {
  summary: string
  options: OptionSpecs
  /** Runs before any database is started: reads and checks the arguments (and stdin); a string is the error. */
  prepare: (values: Record<string, string>, io: CliIo, config: Config) => Promise<Input | string>
  run: (ctx: RunContext<Input>) => Promise<number>
  /** Also connects through DATABASE_MIGRATION_URL when set (named in the database line). */
  migrationConnection?: boolean
}

/** Ties each command's prepare and run to one input type. */
const command = <Input>(c: Command<Input>) => c as Command<unknown>

const noInput = async () => ({})

/** Arguments checked by the same validator as over HTTP, worded the same way. */
function validator<T>(schema: TObject) {
  const validate = createAjv(false).compile<T>(schema)
  return (name: string, input: unknown): T | string =>
    validate(input)
      ? input
      : `${name}: ${fieldErrors(validate.errors ?? [])
          .map((p) => `${p.path} ${p.message}`)
          .join('; ')}`
}

const firstLine = (text: string) => text.split(/\r?\n/)[0] ?? ''

/** The audit record of an operator's change: no address, user agent `cli`. */
function operatorAudit(sql: Sql, config: Config) {
  const cipher = createFieldCipher(config)
  const audit = createAudit(sql, cipher, createLogger({ LOG_LEVEL: 'silent' }), {
    ip: null,
    userAgent: 'cli',
    requestId: null,
  })
  return { cipher, audit }
}

const SetRoleInput = Type.Object({ username: Username, role: Role }, { additionalProperties: false })
type SetRoleInput = Static<typeof SetRoleInput>

const commands: Record<string, Command<unknown>> = {
  migrate: command({
    summary:
      'apply pending migrations (through DATABASE_MIGRATION_URL when set), then grant the runtime role',
    options: {},
    prepare: noInput,
    migrationConnection: true,
    async run({ sql, io, config }) {
      const { applied, encrypted } = await migrateDatabase(config, sql, createFieldCipher(config))
      io.stdout(applied.length ? `applied ${applied.join(', ')}` : 'database is up to date')
      if (encrypted > 0) io.stdout(`encrypted ${encrypted} plaintext values`)
      return 0
    },
  }),
  'create-user': command({
    summary: 'create a user; reads the password from standard input (one line)',
    options: {
      username: { value: '<name>', help: '3–32 characters of A-Z a-z 0-9 _ . -' },
      email: { value: '<address>', help: 'the email address' },
      role: { value: 'user|admin', help: 'default user', optional: true },
    },
    async prepare(values, io, config) {
      const check = validator<CreateUserInput>(createUserInput(config.PASSWORD_MIN_LENGTH))
      // Registration's rules; the password policy's lists are checked when the user is created.
      const password = firstLine(await io.stdin())
      return check('create-user', { ...values, password, role: values.role ?? 'user' })
    },
    async run({ sql, input, io, config }) {
      // Mail budgets count in this process only; the operator may be told that an email is taken.
      const ctx = { sql, config, counters: new MemoryCounterStore(), ...operatorAudit(sql, config) }
      const user = await createUser(ctx, input, { revealTakenEmail: true })
      io.stdout(`created ${user.role} ${user.username} (${user.id})`)
      return 0
    },
  }),
  'set-role': command({
    summary: "change an existing user's role; their sessions end, as when an admin changes it",
    options: {
      username: { value: '<name>', help: 'the user (any letter case)' },
      role: { value: 'user|admin', help: 'the new role; the last enabled admin cannot be demoted' },
    },
    prepare: async (values) =>
      validator<SetRoleInput>(SetRoleInput)('set-role', values as Partial<SetRoleInput>),
    async run({ sql, input, io, config }) {
      const done = await setRoleByOperator(
        { sql, config, ...operatorAudit(sql, config) },
        input.username,
        input.role,
      ).catch((error: unknown) => {
        if (error instanceof AppError && error.statusCode === 404) return null
        throw error
      })
      if (!done) {
        io.stderr(`set-role: there is no user ${input.username}`)
        return 1
      }
      const { user, previousRole } = done
      io.stdout(
        previousRole === user.role
          ? `${user.username} (${user.id}) is already ${user.role}`
          : `${user.username} (${user.id}) is now ${user.role} (was ${previousRole}); their sessions were ended`,
      )
      return 0
    },
  }),
  'create-roles': command({
    summary:
      'create or update the migration and runtime roles named by DATABASE_MIGRATION_URL and DATABASE_URL (sql/roles.sql)',
    options: {
      'admin-url': {
        value: '-',
        help: 'connect as an administrator whose URL is read from standard input',
        optional: true,
      },
    },
    async prepare(values, io, config) {
      const flag = values['admin-url']
      if (flag !== undefined && flag !== '-') return 'create-roles: expected --admin-url -'
      const { DATABASE_MIGRATION_URL: migrationUrl, DATABASE_URL: runtimeUrl } = config
      // A setting, but checked here: without both, nothing may start (not even the embedded database).
      if (!migrationUrl || !runtimeUrl) {
        return 'create-roles: DATABASE_MIGRATION_URL and DATABASE_URL must both be set'
      }
      const adminUrl = flag ? firstLine(await io.stdin()).trim() : undefined
      if (adminUrl) {
        // The administrator's password crosses the same network: same transport rules (ASVS 5.0 12.3.1).
        const checked = { ...config, DATABASE_URL: adminUrl, DATABASE_MIGRATION_URL: undefined }
        const problem = transportProblem(checked, config.NODE_ENV === 'production')
        if (problem) return `create-roles: ${problem.replace(/^DATABASE_URL/, 'the administrator URL')}`
      }
      return { adminUrl, migrationUrl, runtimeUrl }
    },
    async run({ input, io, config }) {
      const names = rolesFromUrls(input.migrationUrl, input.runtimeUrl)
      const admin = createSql({
        ...config,
        DATABASE_URL: input.adminUrl || input.migrationUrl,
        DATABASE_POOL_MAX: 1,
      })
      try {
        await createRoles(admin, names)
      } finally {
        await admin.end({ timeout: 5 })
      }
      io.stdout(`roles ready: ${names.migrationRole} (migrations), ${names.runtimeRole} (runtime)`)
      return 0
    },
  }),
  'rotate-data-key': command({
    summary:
      're-encrypt every personal value under the first key of DATA_ENCRYPTION_KEYS, in batches (resumable)',
    options: {},
    prepare: noInput,
    migrationConnection: true,
    async run({ sql, io, config }) {
      const cipher = createFieldCipher(config)
      const url = config.DATABASE_MIGRATION_URL
      // The audit log is append-only for the runtime role: rewriting its ciphertext needs the owner.
      const owner = url ? createSql({ ...config, ...OWNER_POOL, DATABASE_URL: url }) : sql
      try {
        const result = await reencrypt(owner, cipher, {
          onProgress: (p) => io.stdout(`${p.table}.${p.column}: ${p.done} re-encrypted`),
        })
        for (const value of result.failed)
          io.stderr(`rotate-data-key: cannot decrypt ${value}; left as it is`)
        const left = Object.entries(await staleCounts(owner, cipher)).filter(([, n]) => n > 0)
        if (left.length > 0) {
          const counts = left.map(([column, n]) => `${column} ${n}`).join(', ')
          io.stderr(`rotate-data-key: still not under ${cipher.activeKeyId}: ${counts}`)
          return 1
        }
        io.stdout(
          `${result.done} values re-encrypted; every value is under key ${cipher.activeKeyId}: older keys may be removed`,
        )
        return 0
      } finally {
        if (owner !== sql) await owner.end({ timeout: 5 })
      }
    },
  }),
}

const USAGE = 'usage: npm run cli -- <command> [options]'

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(17)}${c.summary}`)
  return [
    USAGE,
    'commands:',
    ...lines,
    'options are written --name value or --name=value; `npm run cli -- <command> --help` describes one',
  ].join('\n')
}

function commandUsage(name: string, c: Command<unknown>): string {
  const options = Object.keys(c.options).length ? ['options:', ...optionLines(c.options)] : []
  return [`usage: npm run cli -- ${[name, ...synopsis(c.options)].join(' ')}`, c.summary, ...options].join(
    '\n',
  )
}

/** Which database a command works on, printed before it connects (no password). */
export function databaseLine(config: Config, c: Pick<Command<unknown>, 'migrationConnection'>): string {
  if (!config.DATABASE_URL) return `database: embedded PostgreSQL in ${displayPath(config.EMBEDDED_DB_DIR)}`
  const migration =
    c.migrationConnection && config.DATABASE_MIGRATION_URL
      ? ` (migrations through ${redactUrl(config.DATABASE_MIGRATION_URL)})`
      : ''
  return `database: ${redactUrl(config.DATABASE_URL)}${migration}`
}

/**
 * Runs one operator command; returns the exit code. Arguments are checked first: help, a usage
 * error or invalid input never starts or touches a database.
 */
export async function runCli(argv: string[], config: Config, io: CliIo, logger?: Logger): Promise<number> {
  const [name, ...args] = argv
  if (name === '--help' || name === '-h' || name === 'help') {
    io.stdout(usage())
    return 0
  }
  const c = name ? commands[name] : undefined
  if (!name || !c) {
    io.stderr(name ? `unknown command: ${name}\n${usage()}` : usage())
    return name ? 1 : 0
  }
  let input: unknown
  try {
    const { help, values } = parseOptions(args, c.options)
    if (help) {
      io.stdout(commandUsage(name, c))
      return 0
    }
    input = await c.prepare(values, io, config)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    io.stderr(`${name}: ${error.message}\n${commandUsage(name, c)}`)
    return 1
  }
  if (typeof input === 'string') {
    io.stderr(input)
    return 1
  }
  io.stderr(databaseLine(config, c))
  const log =
    logger ?? createLogger({ LOG_LEVEL: 'warn', LOG_FORMAT: config.LOG_FORMAT, NODE_ENV: config.NODE_ENV })
  const { config: resolved, embedded } = await resolveDatabase(config, log, { announce: io.stderr })
  const sql = createSql(resolved)
  try {
    return await c.run({ sql, input, io, config: resolved })
  } catch (error) {
    const fields =
      error instanceof AppError && error.errors ? error.errors.map((e) => `${e.path} ${e.message}`) : []
    io.stderr([`${name}: ${(error as Error).message}`, ...fields].join(' '))
    return 1
  } finally {
    await sql.end({ timeout: 5 })
    await embedded?.stop()
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

const entry = process.argv[1] ? realpathSync(process.argv[1]) : ''
if (entry === fileURLToPath(import.meta.url)) {
  const io: CliIo = {
    stdout: (line) => process.stdout.write(`${line}\n`),
    stderr: (line) => process.stderr.write(`${line}\n`),
    stdin: readStdin,
  }
  // As PID 1 (a one-shot container job) a signal without a handler is ignored: stop when told to. A
  // migration in flight rolls back with its transaction when the connection drops.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      io.stderr(`bulwark: ${signal}: stopped`)
      process.exit(128 + constants.signals[signal])
    })
  }
  // embedded-postgres makes Node ignore process.exitCode, so exit explicitly.
  process.exit(await runCli(process.argv.slice(2), configOrExit(), io))
}
