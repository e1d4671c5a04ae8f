import { readFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { Sql, TransactionSql } from 'postgres'

/**
 * The database roles: runs the shipped SQL files (sql/roles.sql, sql/grant-runtime.sql), the same
 * files a DBA can run with psql, by understanding the two psql features they use: variables
 * (`:'name'` as a literal, `:"name"` as an identifier) and `\gexec` (run each value a query returns).
 */

const libDir = dirname(fileURLToPath(import.meta.url))
const rootDir = basename(dirname(libDir)) === 'dist' ? dirname(dirname(libDir)) : dirname(libDir)
export const SQL_DIR = join(rootDir, 'sql')

export interface RoleNames {
  migrationRole: string
  migrationPassword: string
  runtimeRole: string
  runtimePassword: string
  database: string
}

const literal = (value: string) => `'${value.replace(/'/g, "''")}'`
const identifier = (value: string) => `"${value.replace(/"/g, '""')}"`

/** Substitutes psql variables; an unknown one is an error, never left for the server to misread. */
function render(text: string, vars: Record<string, string>): string {
  return text.replace(/:(['"])([a-z_]+)\1/g, (_match, quote: string, name: string) => {
    const value = vars[name]
    if (value === undefined) throw new Error(`sql variable ${name} is not set`)
    return quote === "'" ? literal(value) : identifier(value)
  })
}

/** Runs a psql script's statements in order: `;` ends a statement, `\gexec` runs what it returns. */
async function runScript(tx: TransactionSql, file: string, vars: Record<string, string>): Promise<void> {
  // Literals are quoted by doubling ' only: that is safe only while backslashes are plain characters.
  await tx`set local standard_conforming_strings = on`
  const text = readFileSync(join(SQL_DIR, file), 'utf8')
  const lines = text.split('\n').filter((line) => !/^\s*--/.test(line))
  let statement = ''
  for (const line of lines) {
    statement += `${line}\n`
    const gexec = /\\gexec\s*$/.test(line)
    if (!gexec && !/;\s*$/.test(line)) continue
    const sql = render(statement.replace(/\\gexec\s*$/m, ''), vars)
    statement = ''
    if (!gexec) {
      await tx.unsafe(sql)
      continue
    }
    for (const row of await tx.unsafe<Record<string, string>[]>(sql)) {
      for (const generated of Object.values(row)) if (generated) await tx.unsafe(generated)
    }
  }
}

const DUPLICATE = new Set(['42710', '23505', 'XX000'])
const ROLE_ATTEMPTS = 5

/**
 * Creates or updates both roles (sql/roles.sql). Roles are cluster-wide, so concurrent runs (parallel
 * test files, replicas booting at once) can collide ("tuple concurrently updated"): retried after a
 * short random pause, up to ROLE_ATTEMPTS times.
 */
export async function createRoles(sql: Sql, names: RoleNames): Promise<void> {
  const vars = {
    migration_role: names.migrationRole,
    migration_password: names.migrationPassword,
    runtime_role: names.runtimeRole,
    runtime_password: names.runtimePassword,
    database: names.database,
  }
  for (let attempt = 1; ; attempt++) {
    try {
      await sql.begin((tx) => runScript(tx, 'roles.sql', vars))
      return
    } catch (error) {
      const code = (error as { code?: string }).code ?? ''
      if (attempt >= ROLE_ATTEMPTS || !DUPLICATE.has(code)) throw error
      await sleep(25 + Math.random() * 100 * attempt)
    }
  }
}

/** Grants the runtime role what its queries need, and nothing else (sql/grant-runtime.sql). */
export async function grantRuntime(sql: Sql, runtimeRole: string): Promise<void> {
  await sql.begin((tx) => runScript(tx, 'grant-runtime.sql', { runtime_role: runtimeRole }))
}

/** The two roles as the migration and runtime connection URLs name them (user, password, database). */
export function rolesFromUrls(migrationUrl: string, runtimeUrl: string): RoleNames {
  const migration = roleOf(migrationUrl)
  const runtime = roleOf(runtimeUrl)
  return {
    migrationRole: migration.role,
    migrationPassword: migration.password,
    runtimeRole: runtime.role,
    runtimePassword: runtime.password,
    database: runtime.database,
  }
}

/** The role name and password a connection URL names. */
export function roleOf(url: string): { role: string; password: string; database: string } {
  const parsed = new URL(url)
  return {
    role: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    database: decodeURIComponent(parsed.pathname.slice(1)),
  }
}
