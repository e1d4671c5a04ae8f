import { realpathSync } from 'node:fs'
import { constants } from 'node:os'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import type { Sql } from 'postgres'
import { configOrExit } from './lib/config.js'
import { createRoles, rolesFromUrls } from './lib/db-roles.js'
import { transportProblem } from './lib/db-tls.js'
import { resolveDatabase } from './lib/embedded-postgres.js'
import { AppError } from './lib/errors.js'
import { createFieldCipher } from './lib/field-crypto.js'
import { createLogger } from './lib/logger.js'
import { createAjv, fieldErrors } from './lib/validation.js'
import { createSql, migrateDatabase, OWNER_POOL } from './plugins/app/db.js'
import { type CreateUserInput, createUserInput } from './schemas/auth.js'
import type { Config } from './schemas/env.js'
import { createAudit } from './services/audit.js'
import { reencrypt, staleCounts } from './services/data-keys.js'
import { createUser } from './services/users.js'

/** Operator commands (`npm run cli -- <command>`): migrate, create-user. */

export interface CliIo {
  stdout: (line: string) => void
  stderr: (line: string) => void
  stdin: () => Promise<string>
}

interface Command {
  summary: string
  run: (ctx: { sql: Sql; args: string[]; io: CliIo; config: Config }) => Promise<number>
}

/** `--name value` pairs; unknown or repeated flags are errors, never ignored. */
function parseFlags(args: string[], allowed: string[]): Record<string, string> {
  const flags: Record<string, string> = {}
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i]?.replace(/^--/, '') ?? ''
    const value = args[i + 1]
    if (!args[i]?.startsWith('--') || !allowed.includes(name) || value === undefined || name in flags) {
      throw new Error(`expected ${allowed.map((a) => `--${a} <value>`).join(' ')}`)
    }
    flags[name] = value
  }
  return flags
}

const commands: Record<string, Command> = {
  'create-user': {
    summary: 'create a user; reads the password from standard input (one line)',
    async run({ sql, args, io, config }) {
      const flags = parseFlags(args, ['username', 'email', 'role'])
      const password = (await io.stdin()).split(/\r?\n/)[0] ?? ''
      const input = { username: flags.username, email: flags.email, password, role: flags.role ?? 'user' }
      // Registration's rules, checked by the same validator and worded as over HTTP.
      const validateCreateUser = createAjv(false).compile<CreateUserInput>(
        createUserInput(config.PASSWORD_MIN_LENGTH),
      )
      if (!validateCreateUser(input)) {
        const problems = fieldErrors(validateCreateUser.errors ?? [])
        io.stderr(`create-user: ${problems.map((p) => `${p.path} ${p.message}`).join('; ')}`)
        return 1
      }
      const cipher = createFieldCipher(config)
      const audit = createAudit(sql, cipher, createLogger({ LOG_LEVEL: 'silent' }), {
        ip: null,
        userAgent: 'cli',
        requestId: null,
      })
      const user = await createUser({ sql, config, audit, cipher }, input)
      io.stdout(`created ${user.role} ${user.username} (${user.id})`)
      return 0
    },
  },
  migrate: {
    summary:
      'apply pending migrations (through DATABASE_MIGRATION_URL when set), then grant the runtime role',
    async run({ sql, io, config }) {
      const { applied, encrypted } = await migrateDatabase(config, sql, createFieldCipher(config))
      io.stdout(applied.length ? `applied ${applied.join(', ')}` : 'database is up to date')
      if (encrypted > 0) io.stdout(`encrypted ${encrypted} plaintext values`)
      return 0
    },
  },
  'create-roles': {
    summary:
      'create or update the migration and runtime roles named by DATABASE_MIGRATION_URL and DATABASE_URL (sql/roles.sql); --admin-url - reads an administrator URL from standard input',
    async run({ args, io, config }) {
      const flags = parseFlags(args, ['admin-url'])
      if (!config.DATABASE_MIGRATION_URL || !config.DATABASE_URL) {
        io.stderr('create-roles: DATABASE_MIGRATION_URL and DATABASE_URL must both be set')
        return 1
      }
      if (flags['admin-url'] !== undefined && flags['admin-url'] !== '-')
        throw new Error('expected --admin-url -')
      const adminUrl = flags['admin-url'] ? (await io.stdin()).split(/\r?\n/)[0]?.trim() : undefined
      if (adminUrl) {
        // The administrator's password crosses the same network: same transport rules (ASVS 5.0 12.3.1).
        const checked = { ...config, DATABASE_URL: adminUrl, DATABASE_MIGRATION_URL: undefined }
        const problem = transportProblem(checked, config.NODE_ENV === 'production')
        if (problem) {
          io.stderr(`create-roles: ${problem.replace(/^DATABASE_URL/, 'the administrator URL')}`)
          return 1
        }
      }
      const names = rolesFromUrls(config.DATABASE_MIGRATION_URL, config.DATABASE_URL)
      const admin = createSql({
        ...config,
        DATABASE_URL: adminUrl || config.DATABASE_MIGRATION_URL,
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
  },
  'rotate-data-key': {
    summary:
      're-encrypt every personal value under the first key of DATA_ENCRYPTION_KEYS, in batches (resumable)',
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
  },
}

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(17)}${c.summary}`)
  return ['usage: npm run cli -- <command> [options]', 'commands:', ...lines].join('\n')
}

/** Runs one operator command against the configured (or embedded) database; returns the exit code. */
export async function runCli(argv: string[], config: Config, io: CliIo, logger?: Logger): Promise<number> {
  const [name, ...args] = argv
  const command = name ? commands[name] : undefined
  if (!command) {
    io.stderr(name ? `unknown command: ${name}\n${usage()}` : usage())
    return name ? 1 : 0
  }
  const log = logger ?? createLogger({ LOG_LEVEL: 'warn' })
  const { config: resolved, embedded } = await resolveDatabase(config, log)
  const sql = createSql(resolved)
  try {
    return await command.run({ sql, args, io, config: resolved })
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
