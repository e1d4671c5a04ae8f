import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Sql, TransactionSql } from 'postgres'

/** Forward-only SQL migrations: read, checked and applied once under an advisory lock. */

export interface Migration {
  id: number
  name: string
  checksum: string
  text: string
}

/** The project root holds migrations/, whether this module runs from lib/ or dist/lib/. */
const libDir = dirname(fileURLToPath(import.meta.url))
const rootDir = basename(dirname(libDir)) === 'dist' ? dirname(dirname(libDir)) : dirname(libDir)
export const MIGRATIONS_DIR = join(rootDir, 'migrations')

const FILE_NAME = /^(\d{4})_[a-z0-9_-]+\.sql$/

/** Reads the numbered SQL files in order; a gap-free, duplicate-free sequence is required. */
export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()
  return files.map((name, index) => {
    const match = FILE_NAME.exec(name)
    if (!match) throw new Error(`migration file name must look like 0001_name.sql: ${name}`)
    const id = Number(match[1])
    if (id !== index + 1) throw new Error(`migration ${name} is out of sequence (expected ${index + 1})`)
    const text = readFileSync(join(dir, name), 'utf8')
    return { id, name, text, checksum: createHash('sha256').update(text).digest('hex') }
  })
}

/*
 * The migrator's own bookkeeping table, schema_migrations, is infrastructure like the migrator itself
 * (as in any migration library), so its SQL lives here; repositories/ holds the application's tables.
 */

/** Arbitrary constant that names Bulwark's migration lock among advisory locks. */
const MIGRATION_LOCK_KEY = 0x42_75_6c_77 // "Bulw"

type Applied = { id: number; name: string; checksum: string }

/**
 * A migration's own bounds, set per transaction over the runtime pool's short ones: long DDL may run
 * for minutes, yet it waits at most a minute for the application's locks, so it never parks in front
 * of every request for long (OWASP ASVS 5.0 15.2.2). Waiting for another replica's migration (the
 * advisory lock) may take as long as that migration may run.
 */
async function lockAndList(tx: TransactionSql): Promise<Applied[]> {
  await tx`set local statement_timeout = '10min'`
  await tx`set local lock_timeout = '10min'`
  await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`
  await tx`set local lock_timeout = '1min'`
  await tx`
    create table if not exists schema_migrations (
      id integer primary key,
      name text not null,
      checksum text not null,
      applied_at timestamptz not null default now()
    )
  `
  return tx<Applied[]>`select id, name, checksum from schema_migrations order by id`
}

export interface MigrateResult {
  applied: string[]
}

/**
 * Applies pending migrations, each in its own transaction that first takes an advisory lock, so
 * replicas starting together apply each file exactly once. An applied file that changed since is an
 * error: migrations are forward-only.
 */
export async function migrate(sql: Sql, migrations = readMigrations()): Promise<MigrateResult> {
  const applied: string[] = []
  for (const m of migrations) {
    await sql.begin(async (tx) => {
      const done = (await lockAndList(tx)).find((row) => row.id === m.id)
      if (done) {
        if (done.checksum !== m.checksum) {
          throw new Error(`migration ${m.name} changed after it was applied; add a new migration instead`)
        }
        return
      }
      await tx.unsafe(m.text)
      await tx`insert into schema_migrations (id, name, checksum) values (${m.id}, ${m.name}, ${m.checksum})`
      applied.push(m.name)
    })
  }
  return { applied }
}

/** True when the database answers and has every migration this build knows; throws if none ran yet. */
export async function migrationsCurrent(sql: Sql, latestId: number): Promise<boolean> {
  const [row] = await sql<{ id: number | null }[]>`select max(id) as id from schema_migrations`
  return row?.id != null && row.id >= latestId
}
