import type { Sql, TransactionSql } from 'postgres'

/** Arbitrary constant that names Bulwark's migration lock among advisory locks. */
const MIGRATION_LOCK_KEY = 0x42_75_6c_77 // "Bulw"

export async function lockMigrations(tx: TransactionSql): Promise<void> {
  await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`
}

export async function ensureMigrationsTable(tx: TransactionSql): Promise<void> {
  await tx`
    create table if not exists schema_migrations (
      id integer primary key,
      name text not null,
      checksum text not null,
      applied_at timestamptz not null default now()
    )
  `
}

export async function appliedMigrations(
  tx: Sql | TransactionSql,
): Promise<{ id: number; name: string; checksum: string }[]> {
  return tx<{ id: number; name: string; checksum: string }[]>`
    select id, name, checksum from schema_migrations order by id
  `
}

export async function recordMigration(
  tx: TransactionSql,
  m: { id: number; name: string; checksum: string },
): Promise<void> {
  await tx`insert into schema_migrations (id, name, checksum) values (${m.id}, ${m.name}, ${m.checksum})`
}

export async function runMigrationSql(tx: TransactionSql, text: string): Promise<void> {
  await tx.unsafe(text)
}

/** Highest applied migration id, or null when none; throws if the table is missing. */
export async function latestMigrationId(sql: Sql): Promise<number | null> {
  const [row] = await sql<{ id: number | null }[]>`select max(id) as id from schema_migrations`
  return row?.id ?? null
}
