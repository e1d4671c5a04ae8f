import type { Sql, TransactionSql } from 'postgres'
import type { Role } from '../schemas/auth.js'

type Db = Sql | TransactionSql

export interface UserRow {
  id: string
  username: string
  email: string
  role: Role
  disabled: boolean
  createdAt: Date
}

export interface UserWithHash extends UserRow {
  passwordHash: string
}

export async function insertUser(
  db: Db,
  user: { username: string; email: string; passwordHash: string; role: Role },
): Promise<UserRow> {
  const [row] = await db<UserRow[]>`
    insert into users (username, email, password_hash, role)
    values (${user.username}, ${user.email}, ${user.passwordHash}, ${user.role})
    returning id, username, email, role, disabled, created_at
  `
  return row as UserRow
}

/** Login accepts the username (any case) or the email. */
export async function findUserByLogin(db: Db, login: string): Promise<UserWithHash | undefined> {
  const [row] = await db<UserWithHash[]>`
    select id, username, email, role, disabled, created_at, password_hash
    from users
    where lower(username) = lower(${login}) or email = lower(${login})
    limit 1
  `
  return row
}

export async function findUserById(db: Db, id: string): Promise<UserWithHash | undefined> {
  const [row] = await db<UserWithHash[]>`
    select id, username, email, role, disabled, created_at, password_hash
    from users where id = ${id}
  `
  return row
}

export async function updatePasswordHash(db: Db, id: string, passwordHash: string): Promise<void> {
  await db`update users set password_hash = ${passwordHash}, updated_at = now() where id = ${id}`
}
