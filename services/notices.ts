import type { Sql, TransactionSql } from 'postgres'
import { hasOtherSession } from '../repositories/sessions.js'
import type { UserRow } from '../repositories/users.js'
import type { ServiceContext } from './context.js'
import { queueMail } from './mail.js'
import type { MailData } from './mail-templates.js'

/**
 * Security notices: a mail to the account's own address about what just happened to it, queued in
 * the transaction of the change, so it is sent exactly when the change commits (OWASP ASVS 5.0
 * 6.3.5 suspicious sign-ins, 6.3.7 changes to authentication details).
 */

type NoticeContext = Pick<ServiceContext, 'cipher' | 'audit' | 'config'>
type Recipient = Pick<UserRow, 'id' | 'username' | 'email'>

/** The templates that are notices. */
export type Notice =
  | 'password-changed'
  | 'mfa-enabled'
  | 'mfa-disabled'
  | 'recovery-code-used'
  | 'new-sign-in'
  | 'sessions-revoked'
  | 'api-key-created'
  | 'passkey-added'
  | 'passkey-removed'

/** Queues `template` to the user's address; `extra` is what it needs besides the username, if anything. */
export async function notify<T extends Notice>(
  ctx: NoticeContext,
  tx: Sql | TransactionSql,
  user: Recipient,
  template: T,
  ...extra: keyof Omit<MailData[T], 'username'> extends never ? [] : [Omit<MailData[T], 'username'>]
): Promise<void> {
  const data = { ...extra[0], username: user.username } as MailData[T]
  await queueMail(ctx, tx, { template, userId: user.id, to: user.email, data })
}

/**
 * A sign-in from a client that holds no valid device cookie of this account (lib/device-cookie.ts:
 * none sent, another account's, forged, too old, or issued under an earlier password), on an account
 * that has signed in before: its very first sign-in, right after registration, is no news to anyone.
 * "Before" is any other session row, revoked or expired ones included (sessions are never deleted).
 */
export async function noticeNewDevice(
  ctx: NoticeContext & Pick<ServiceContext, 'origin'>,
  tx: TransactionSql,
  user: Recipient,
  session: { id: string; authTime: Date },
  deviceId: string | undefined,
): Promise<void> {
  // Mail off: not even the query, so the sign-in path costs what it did.
  if (deviceId !== undefined || ctx.config.MAIL_DISABLED) return
  if (!(await hasOtherSession(tx, user.id, session.id))) return
  const { ip, userAgent } = ctx.origin
  await notify(ctx, tx, user, 'new-sign-in', { at: session.authTime.toISOString(), ip, userAgent })
}
