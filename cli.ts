import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import type { Sql } from 'postgres'
import { configOrExit } from './lib/config.js'
import { resolveDatabase } from './lib/embedded-postgres.js'
import { AppError } from './lib/errors.js'
import { createLogger } from './lib/logger.js'
import { migrate } from './lib/migrator.js'
import { createAjv, fieldErrors } from './lib/validation.js'
import { createSql } from './plugins/app/db.js'
import { CreateUserInput } from './schemas/auth.js'
import type { Config } from './schemas/env.js'
import { createAudit } from './services/audit.js'
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

/** Registration's rules, checked by the same validator and worded as over HTTP. */
const validateCreateUser = createAjv(false).compile<CreateUserInput>(CreateUserInput)

const commands: Record<string, Command> = {
  'create-user': {
    summary: 'create a user; reads the password from standard input (one line)',
    async run({ sql, args, io, config }) {
      const flags = parseFlags(args, ['username', 'email', 'role'])
      const password = (await io.stdin()).split(/\r?\n/)[0] ?? ''
      const input = { username: flags.username, email: flags.email, password, role: flags.role ?? 'user' }
      if (!validateCreateUser(input)) {
        const problems = fieldErrors(validateCreateUser.errors ?? [])
        io.stderr(`create-user: ${problems.map((p) => `${p.path} ${p.message}`).join('; ')}`)
        return 1
      }
      const audit = createAudit(sql, createLogger({ LOG_LEVEL: 'silent' }), {
        ip: null,
        userAgent: 'cli',
        requestId: null,
      })
      const user = await createUser({ sql, config, audit }, input)
      io.stdout(`created ${user.role} ${user.username} (${user.id})`)
      return 0
    },
  },
  migrate: {
    summary: 'apply pending database migrations',
    async run({ sql, io }) {
      const { applied } = await migrate(sql)
      io.stdout(applied.length ? `applied ${applied.join(', ')}` : 'database is up to date')
      return 0
    },
  },
}

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(14)}${c.summary}`)
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
  // embedded-postgres makes Node ignore process.exitCode, so exit explicitly.
  process.exit(await runCli(process.argv.slice(2), configOrExit(), io))
}
