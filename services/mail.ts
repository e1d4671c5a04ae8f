import { randomUUID } from 'node:crypto'
import type { Sql, TransactionSql } from 'postgres'
import { AppError, rateLimited } from '../lib/errors.js'
import { insertMail } from '../repositories/outbox.js'
import type { ServiceContext } from './context.js'
import type { MailData, MailTemplate } from './mail-templates.js'

/** Queuing mail: a row in the outbox, written in the transaction of the change that causes it. */

type MailContext = Pick<ServiceContext, 'cipher' | 'audit' | 'config'>

export interface Mail<T extends MailTemplate> {
  template: T
  /** The account the mail is about (null: none, e.g. an address no account has). */
  userId: string | null
  to: string
  data: MailData[T]
}

/**
 * Queues a mail in `tx`: it is sent (services/outbox.ts) exactly when the transaction commits, and
 * never when it rolls back. Audited with its template, never its address or token. Does nothing
 * when mail is disabled (MAIL_DISABLED=true).
 */
export async function queueMail<T extends MailTemplate>(
  ctx: MailContext,
  tx: Sql | TransactionSql,
  mail: Mail<T>,
): Promise<void> {
  if (ctx.config.MAIL_DISABLED) return
  const id = randomUUID()
  await insertMail(tx, ctx.cipher, {
    id,
    template: mail.template,
    userId: mail.userId,
    recipient: mail.to,
    payload: mail.data as unknown as Record<string, unknown>,
  })
  await ctx.audit('mail.queued', mail.userId, { template: mail.template, outboxId: id }, tx)
}

/** The flows that exist only to send a mail answer this while mail is turned off. */
export function assertMailEnabled(config: ServiceContext['config']): void {
  if (config.MAIL_DISABLED) {
    throw new AppError(501, 'Mail is disabled on this service (MAIL_DISABLED=true), so this flow is off.', {
      type: 'mail-disabled',
    })
  }
}

/**
 * Per-account (or per-address) budget of mails and token uses, MAIL_RATE_LIMIT_MAX per window, shared
 * by the replicas: a mailbox cannot be flooded through any endpoint, whatever addresses the requests
 * come from. `silent` answers false instead of 429 where the answer must not differ (a forgotten
 * password for an address that may or may not have an account).
 */
export async function spendMailBudget(
  ctx: Pick<ServiceContext, 'counters' | 'config'>,
  key: string,
  silent = false,
): Promise<boolean> {
  const { MAIL_RATE_LIMIT_MAX: max, MAIL_RATE_LIMIT_WINDOW_MS: windowMs } = ctx.config
  const used = await ctx.counters.increment(`mail:${key}`, windowMs)
  if (used.count <= max) return true
  if (silent) return false
  throw rateLimited('Too many mails for this account. Try again later.', { max, resetMs: used.ttlMs })
}
