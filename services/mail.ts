import { randomUUID } from 'node:crypto'
import type { Sql, TransactionSql } from 'postgres'
import { AppError, rateLimited } from '../lib/errors.js'
import { insertToken, type TokenPurpose } from '../repositories/email-tokens.js'
import { insertMail } from '../repositories/outbox.js'
import type { ServiceContext } from './context.js'
import type { MailData, MailTemplate } from './mail-templates.js'
import { newOpaqueToken } from './opaque-tokens.js'

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

/** The two per-account budgets: mails sent (MAIL_RATE_LIMIT_*) and mailed tokens used (TOKEN_RATE_LIMIT_*). */
const BUDGETS = {
  mail: ['MAIL_RATE_LIMIT_MAX', 'MAIL_RATE_LIMIT_WINDOW_MS', 'Too many mails for this account.'],
  token: [
    'TOKEN_RATE_LIMIT_MAX',
    'TOKEN_RATE_LIMIT_WINDOW_MS',
    'Too many uses of mailed links for this account.',
  ],
} as const

/**
 * Spends one unit of a per-account (or per-address) budget shared by the replicas, whatever client
 * addresses the requests come from: a mailbox cannot be flooded, nor an account's links hammered.
 * `silent` answers false instead of 429 where the answer must not differ (a forgotten password for
 * an address that may or may not have an account, OWASP ASVS 5.0 6.3.8).
 */
export async function spendAccountBudget(
  ctx: Pick<ServiceContext, 'counters' | 'config'>,
  budget: keyof typeof BUDGETS,
  key: string,
  silent = false,
): Promise<boolean> {
  const [maxSetting, windowSetting, detail] = BUDGETS[budget]
  const max = ctx.config[maxSetting]
  const used = await ctx.counters.increment(`${budget}:${key}`, ctx.config[windowSetting])
  if (used.count <= max) return true
  if (silent) return false
  throw rateLimited(`${detail} Try again later.`, { max, resetMs: used.ttlMs })
}

/** The mails that carry a single-use link, and what each link's token is for. */
const LINKS = {
  'verify-email': 'verify_email',
  'email-change-verify': 'email_change',
  'password-reset': 'password_reset',
} as const satisfies Partial<Record<MailTemplate, TokenPurpose>>

/**
 * Stores a new single-use token (256 bits, only its hash kept; earlier unused ones of its purpose
 * die) and queues the mail that carries it, both in `tx` (OWASP ASVS 5.0 6.4.1). `email` is the
 * address the link proves, and where it is sent.
 */
export async function mailLink(
  ctx: MailContext,
  tx: Sql | TransactionSql,
  link: {
    template: keyof typeof LINKS
    user: { id: string; username: string }
    email: string
    ttlSeconds: number
  },
): Promise<void> {
  const { token, hash } = newOpaqueToken()
  const { template, user, email, ttlSeconds } = link
  const purpose = LINKS[template]
  await insertToken(tx, ctx.cipher, { id: randomUUID(), userId: user.id, purpose, hash, email, ttlSeconds })
  await queueMail(ctx, tx, {
    template,
    userId: user.id,
    to: email,
    data: { username: user.username, token, expiresInSeconds: ttlSeconds },
  })
}
