import { listPage, type Position } from '../lib/cursor.js'
import { conflict, forbidden, notFound } from '../lib/errors.js'
import { listAuditEvents } from '../repositories/audit.js'
import { deleteChallenges } from '../repositories/mfa.js'
import { revokeSessions } from '../repositories/sessions.js'
import * as users from '../repositories/users.js'
import type { AdminUser, AdminUserPatch, AdminUserQuery, AuditQuery } from '../schemas/admin.js'
import type { Role } from '../schemas/auth.js'
import { revokeKeysOf } from './api-keys.js'
import type { ServiceContext } from './context.js'
import { notify } from './notices.js'

/** Admin rules: listing users, changing roles and status, reading the audit log. */

type AdminContext = Pick<ServiceContext, 'sql' | 'cursors' | 'audit' | 'cipher' | 'config'>

const toAdminUser = (u: users.UserRow): AdminUser => ({
  id: u.id,
  username: u.username,
  email: u.email,
  role: u.role,
  emailVerified: u.emailVerifiedAt !== null,
  disabled: u.disabled,
  createdAt: u.createdAt.toISOString(),
})

/** What an admin searched for, for the audit record of a read (the filters, never the results). */
const filtersOf = (q: Record<string, unknown>) =>
  Object.fromEntries(
    Object.entries(q)
      .filter(([key, value]) => value !== undefined && key !== 'cursor')
      .map(([key, value]) => [key, String(value).slice(0, 100)]),
  )

/** Reading personal data in bulk is itself audited (OWASP ASVS 5.0 16.3.2). */
export async function listUsers(ctx: AdminContext, actorId: string, q: AdminUserQuery) {
  const fetch = (after: Position | null) => users.listUsers(ctx.sql, ctx.cipher, { ...q, after })
  const page = await listPage(ctx.cursors, 'admin-users', q, fetch, toAdminUser)
  await ctx.audit('admin.users.listed', actorId, { ...filtersOf(q), returned: page.items.length })
  return page
}

/**
 * Role and status changes take effect at once: the user's sessions are revoked in the same
 * transaction (ASVS 7.4.2). The service never leaves itself without an enabled admin.
 */
export async function updateUser(ctx: AdminContext, actorId: string, id: string, patch: AdminUserPatch) {
  return toAdminUser(await changeUser(ctx, actorId, id, patch))
}

/**
 * An operator's role change (`npm run cli -- set-role`): the admin API's rules and audit record,
 * with no acting admin (null): whoever runs the CLI already holds the database's credentials.
 */
export async function setRoleByOperator(
  ctx: Pick<AdminContext, 'sql' | 'audit' | 'cipher' | 'config'>,
  username: string,
  role: Role,
): Promise<{ user: AdminUser; previousRole: Role }> {
  const found = await users.findUserByUsername(ctx.sql, ctx.cipher, username)
  if (!found) throw notFound()
  const after = await changeUser(ctx, null, found.id, { role })
  return { user: toAdminUser(after), previousRole: found.role }
}

async function changeUser(
  ctx: Pick<AdminContext, 'sql' | 'audit' | 'cipher' | 'config'>,
  actorId: string | null,
  id: string,
  patch: AdminUserPatch,
): Promise<users.UserRow> {
  return ctx.sql.begin(async (tx) => {
    const admins = await users.lockEnabledAdmins(tx)
    // The actor's own row is among those locked: an admin demoted or disabled by a change that
    // committed first has lost the right to this one (OWASP ASVS 5.0 8.3.1, checked at the data layer).
    if (actorId !== null && !admins.includes(actorId)) throw forbidden()
    const before = await users.lockUser(tx, ctx.cipher, id)
    if (!before) throw notFound()
    const next = { role: patch.role ?? before.role, disabled: patch.disabled ?? before.disabled }
    const losesAdmin = admins.includes(id) && (next.role !== 'admin' || next.disabled)
    if (losesAdmin && admins.length === 1) {
      throw conflict('This would leave no enabled admin.', 'last-admin')
    }
    if (next.role === before.role && next.disabled === before.disabled) return before
    const after = await users.updateRoleAndStatus(tx, ctx.cipher, id, next)
    const revoked = await revokeSessions(tx, { userId: id }, 'admin_change')
    // API keys: a disabled owner's all end; a demoted admin's keys with the admin scope end (issue 16).
    if (after.disabled) await revokeKeysOf(ctx, tx, id, 'owner_disabled')
    else if (before.role === 'admin' && after.role !== 'admin')
      await revokeKeysOf(ctx, tx, id, 'owner_demoted', 'admin')
    await deleteChallenges(tx, id)
    // Told only when it signed someone out: that is what the user notices and may not have expected.
    if (revoked.length > 0) await notify(ctx, tx, after, 'sessions-revoked', { disabled: after.disabled })
    // Audited in the same transaction: the change and its record commit together.
    if (after.role !== before.role) {
      const detail = { targetUserId: id, from: before.role, to: after.role }
      await ctx.audit('admin.user.role_changed', actorId, detail, tx)
    }
    if (after.disabled !== before.disabled) {
      const event = after.disabled ? 'admin.user.disabled' : 'admin.user.enabled'
      await ctx.audit(event, actorId, { targetUserId: id }, tx)
    }
    return after
  })
}

export async function listAudit(ctx: AdminContext, actorId: string, q: AuditQuery) {
  const fetch = (after: Position | null) => listAuditEvents(ctx.sql, ctx.cipher, { ...q, after })
  const page = await listPage(ctx.cursors, 'audit-events', q, fetch, (r) => ({
    id: r.id,
    event: r.event,
    userId: r.userId,
    ip: r.ip,
    userAgent: r.userAgent,
    requestId: r.requestId,
    detail: r.detail,
    createdAt: r.createdAt.toISOString(),
  }))
  await ctx.audit('admin.audit.read', actorId, { ...filtersOf(q), returned: page.items.length })
  return page
}
