import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Sql } from 'postgres'
import * as repo from '../repositories/migrations.js'

export interface Migration {
  id: number
  name: string
  checksum: string
  text: string
}

/** The project root holds migrations/, whether this module runs from services/ or dist/services/. */
const servicesDir = dirname(fileURLToPath(import.meta.url))
const rootDir =
  basename(dirname(servicesDir)) === 'dist' ? dirname(dirname(servicesDir)) : dirname(servicesDir)
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
      await repo.lockMigrations(tx)
      await repo.ensureMigrationsTable(tx)
      const done = (await repo.appliedMigrations(tx)).find((row) => row.id === m.id)
      if (done) {
        if (done.checksum !== m.checksum) {
          throw new Error(`migration ${m.name} changed after it was applied; add a new migration instead`)
        }
        return
      }
      await repo.runMigrationSql(tx, m.text)
      await repo.recordMigration(tx, m)
      applied.push(m.name)
    })
  }
  return { applied }
}

/** True when the database answers and has every migration this build knows. */
export async function migrationsCurrent(sql: Sql, latestId: number): Promise<boolean> {
  const id = await repo.latestMigrationId(sql)
  return id !== null && id >= latestId
}
