import type { Sql, TransactionSql } from 'postgres'
import type { Position } from '../lib/cursor.js'
import { type FieldCipher, normalizeEmail } from '../lib/field-crypto.js'
import type { Role } from '../schemas/auth.js'
import { olderThan } from './keyset.js'
import type { Principal } from './sessions.js'

/** SQL for users. The email is stored encrypted and found through its blind index (lib/field-crypto.ts). */

type Db = Sql | TransactionSql

export interface UserRow {
  id: string
  username: string
  email: string
  role: Role
  disabled: boolean
  createdAt: Date
  /** When the current address was proved (a verification link followed); null: not yet. */
  emailVerifiedAt: Date | null
}

export interface UserWithHash extends UserRow {
  passwordHash: string
}

const emailAt = (rowId: string) => ({ table: 'users', column: 'email', rowId })

/** Rows as stored, with the email decrypted for the row it belongs to. */
function decrypted<T extends UserRow>(cipher: FieldCipher, row: T): T
function decrypted<T extends UserRow>(cipher: FieldCipher, row: T | undefined): T | undefined
function decrypted<T extends UserRow>(cipher: FieldCipher, row: T | undefined): T | undefined {
  return row && { ...row, email: cipher.decrypt(row.email, emailAt(row.id)) }
}

/** The signed-in user's row, from what the per-request principal check already read (repositories/sessions.ts). */
export function userOfPrincipal(cipher: FieldCipher, principal: Principal): UserRow {
  return decrypted(cipher, {
    id: principal.userId,
    username: principal.username,
    email: principal.sealedEmail,
    role: principal.role,
    disabled: false, // the principal check admits enabled users only
    createdAt: principal.userCreatedAt,
    emailVerifiedAt: principal.emailVerifiedAt,
  })
}

type NewUser = { id: string; username: string; email: string; passwordHash: string; role: Role }

async function insertRow(db: Db, cipher: FieldCipher, user: NewUser, ifFree: boolean) {
  const email = normalizeEmail(user.email)
  const [row] = await db<UserRow[]>`
    insert into users (id, username, email, email_index, password_hash, role)
    values (
      ${user.id}, ${user.username}, ${cipher.encrypt(email, emailAt(user.id))}, ${cipher.blindIndex(email)},
      ${user.passwordHash}, ${user.role}
    )
    ${ifFree ? db`on conflict do nothing` : db``}
    returning id, username, email, role, disabled, created_at, email_verified_at
  `
  return decrypted(cipher, row)
}

export async function insertUser(db: Db, cipher: FieldCipher, user: NewUser): Promise<UserRow> {
  return (await insertRow(db, cipher, user, false)) as UserRow
}

/**
 * Inserts the user unless the username or the email is taken: undefined then, with no error and no
 * aborted transaction. The unique indexes decide, also between concurrent registrations.
 */
export function insertUserIfFree(db: Db, cipher: FieldCipher, user: NewUser): Promise<UserRow | undefined> {
  return insertRow(db, cipher, user, true)
}

/** The accounts a registration collided with: the one holding the username (`sameUsername`) and/or the email. */
export async function findRegistrationHolders(
  db: Db,
  cipher: FieldCipher,
  wanted: { username: string; email: string },
): Promise<(UserRow & { sameUsername: boolean })[]> {
  const rows = await db<(UserRow & { sameUsername: boolean })[]>`
    select id, username, email, role, disabled, created_at, email_verified_at,
      lower(username collate "C") = lower(${wanted.username}::text collate "C") as same_username
    from users
    where lower(username collate "C") = lower(${wanted.username}::text collate "C")
      or email_index = ${cipher.blindIndex(normalizeEmail(wanted.email))}
  `
  return rows.map((row) => decrypted(cipher, row))
}

export async function findUserByEmail(
  db: Db,
  cipher: FieldCipher,
  email: string,
): Promise<UserRow | undefined> {
  const [row] = await db<UserRow[]>`
    select id, username, email, role, disabled, created_at, email_verified_at from users
    where email_index = ${cipher.blindIndex(normalizeEmail(email))}
  `
  return decrypted(cipher, row)
}

/** Marks the current address proved; an earlier proof keeps its time. */
export async function markEmailVerified(db: Db, id: string): Promise<void> {
  await db`
    update users set email_verified_at = coalesce(email_verified_at, now()), updated_at = now()
    where id = ${id}
  `
}

/** Replaces the address (encrypted, with its blind index) with one just proved. Unique violation when taken. */
export async function setVerifiedEmail(
  db: Db,
  cipher: FieldCipher,
  id: string,
  email: string,
): Promise<void> {
  const normalized = normalizeEmail(email)
  await db`
    update users set email = ${cipher.encrypt(normalized, emailAt(id))},
      email_index = ${cipher.blindIndex(normalized)}, email_verified_at = now(), updated_at = now()
    where id = ${id}
  `
}

/**
 * Login accepts the username (any case) or the email (by its blind index). Usernames are folded by
 * the "C" rules only, on both sides, as the unique index is (migration 0006): ASCII case, nothing else.
 */
export async function findUserByLogin(
  db: Db,
  cipher: FieldCipher,
  login: string,
): Promise<UserWithHash | undefined> {
  const [row] = await db<UserWithHash[]>`
    select id, username, email, role, disabled, created_at, email_verified_at, password_hash
    from users
    where lower(username collate "C") = lower(${login}::text collate "C") or email_index = ${cipher.blindIndex(normalizeEmail(login))}
    limit 1
  `
  return decrypted(cipher, row)
}

export async function findUserById(
  db: Db,
  cipher: FieldCipher,
  id: string,
): Promise<UserWithHash | undefined> {
  const [row] = await db<UserWithHash[]>`
    select id, username, email, role, disabled, created_at, email_verified_at, password_hash
    from users where id = ${id}
  `
  return decrypted(cipher, row)
}

export async function updatePasswordHash(db: Db, id: string, passwordHash: string): Promise<void> {
  await db`update users set password_hash = ${passwordHash}, updated_at = now() where id = ${id}`
}

/**
 * Sets the password chosen through a reset link mailed to the account's address; following that
 * link proved the mailbox as well, so an address not yet verified is verified now.
 */
export async function resetPasswordHash(db: Db, id: string, passwordHash: string): Promise<void> {
  await db`
    update users
    set password_hash = ${passwordHash}, email_verified_at = coalesce(email_verified_at, now()), updated_at = now()
    where id = ${id}
  `
}

/**
 * Replaces the hash only while it is still the one that was verified: a password change that commits
 * first wins, and a sign-in's rehash of the old password can never undo it. True when replaced.
 */
export async function replacePasswordHash(
  db: Db,
  id: string,
  verified: string,
  passwordHash: string,
): Promise<boolean> {
  const rows = await db`
    update users set password_hash = ${passwordHash}
    where id = ${id} and password_hash = ${verified}
    returning id
  `
  return rows.length === 1
}

/**
 * Locks the user's row for the rest of the transaction while its password hash is still `hash`:
 * false when a password change has committed since it was read. Held `for share`, so a change that
 * starts now waits for this transaction, then revokes what it made.
 */
export async function lockIfPasswordCurrent(db: Db, id: string, hash: string): Promise<boolean> {
  const rows = await db`
    select 1 from users where id = ${id} and password_hash = ${hash} for share
  `
  return rows.length === 1
}

export async function findUserByUsername(
  db: Db,
  cipher: FieldCipher,
  username: string,
): Promise<UserRow | undefined> {
  const [row] = await db<UserRow[]>`
    select id, username, email, role, disabled, created_at, email_verified_at from users
    where lower(username collate "C") = lower(${username}::text collate "C")
  `
  return decrypted(cipher, row)
}

/** LIKE metacharacters in a search prefix are literals, not wildcards. */
const likePrefix = (q: string) => `${q.replace(/[\\%_]/g, '\\$&')}%`

/** `q` is a username prefix, or an exact email: encrypted emails can only be matched whole. */
export async function listUsers(
  db: Db,
  cipher: FieldCipher,
  q: {
    limit: number
    after: Position | null
    role?: Role | undefined
    disabled?: boolean | undefined
    q?: string | undefined
  },
): Promise<(UserRow & { cursorAt: string })[]> {
  const rows = await db<(UserRow & { cursorAt: string })[]>`
    select id, username, email, role, disabled, created_at, email_verified_at, created_at::text as cursor_at
    from users
    where true
      ${q.role !== undefined ? db`and role = ${q.role}` : db``}
      ${q.disabled !== undefined ? db`and disabled = ${q.disabled}` : db``}
      ${
        q.q !== undefined
          ? db`and (lower(username collate "C") like lower(${likePrefix(q.q)}::text collate "C") or email_index = ${cipher.blindIndex(normalizeEmail(q.q))})`
          : db``
      }
      ${olderThan(db, q.after)}
    order by created_at desc, id desc
    limit ${q.limit + 1}
  `
  return rows.map((row) => decrypted(cipher, row))
}

/**
 * Locks the enabled admins, so two concurrent demotions cannot both pass the last-admin check.
 * NO KEY UPDATE, not UPDATE: inserts that reference the user (refresh tokens) must not block on it.
 */
export async function lockEnabledAdmins(tx: TransactionSql): Promise<string[]> {
  const rows = await tx<{ id: string }[]>`
    select id from users where role = 'admin' and not disabled order by id for no key update
  `
  return rows.map((r) => r.id)
}

export async function lockUser(
  tx: TransactionSql,
  cipher: FieldCipher,
  id: string,
): Promise<UserRow | undefined> {
  const [row] = await tx<UserRow[]>`
    select id, username, email, role, disabled, created_at, email_verified_at from users where id = ${id} for no key update
  `
  return decrypted(cipher, row)
}

/** The user with their hash, share-locked: no password change or disabling commits until the transaction ends. */
export async function shareLockUser(
  tx: TransactionSql,
  cipher: FieldCipher,
  id: string,
): Promise<UserWithHash | undefined> {
  const [row] = await tx<UserWithHash[]>`
    select id, username, email, role, disabled, created_at, email_verified_at, password_hash from users where id = ${id} for share
  `
  return decrypted(cipher, row)
}

export async function updateRoleAndStatus(
  tx: TransactionSql,
  cipher: FieldCipher,
  id: string,
  change: { role: Role; disabled: boolean },
): Promise<UserRow> {
  const [row] = await tx<UserRow[]>`
    update users set role = ${change.role}, disabled = ${change.disabled}, updated_at = now()
    where id = ${id}
    returning id, username, email, role, disabled, created_at, email_verified_at
  `
  return decrypted(cipher, row as UserRow)
}
