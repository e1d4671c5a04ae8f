import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Sql } from 'postgres'
import type { FieldCipher } from '../lib/field-crypto.js'
import { isPermanentFailure, type MailTransport } from '../lib/mail-transport.js'
import * as outbox from '../repositories/outbox.js'
import type { Config } from '../schemas/env.js'
import type { Audit, AuditDetail } from './audit.js'
import { type MailData, type MailTemplate, renderMail } from './mail-templates.js'

/**
 * The outbox worker: claims due mails, sends them, and settles each row (sent, retry later, given
 * up). Every replica runs one; the claim (repositories/outbox.ts) keeps them off each other's rows.
 * A mail is sent at least once: only a worker that dies between the server's acceptance and the
 * row's update (a lease later) can send a row twice, never two live workers.
 */

export interface OutboxWorker {
  /** One round: claims and settles what is due; resolves with how many mails were handled. */
  runOnce(): Promise<number>
  /** Stops polling and waits for the round in flight. */
  stop(): Promise<void>
}

export interface OutboxWorkerOptions {
  sql: Sql
  cipher: FieldCipher
  transport: MailTransport
  config: Pick<
    Config,
    | 'MAIL_POLL_INTERVAL_MS'
    | 'MAIL_MAX_ATTEMPTS'
    | 'MAIL_RETRY_BASE_MS'
    | 'PUBLIC_APP_URL'
    | 'PORT'
    | 'MFA_TOTP_ISSUER'
  >
  log: FastifyBaseLogger
  audit: Audit
}

/** Longer than one send can take (lib/mail-transport.ts SMTP_TIMEOUTS); renewed before each send. */
export const LEASE_SECONDS = 120
const BATCH = 10
const MAX_DELAY_MS = 3_600_000
/** Settled rows (no address, no payload left) are kept this long for the operator, then deleted. */
const RETENTION_DAYS = 7
const PRUNE_EVERY_MS = 3_600_000

/** Exponential backoff with ±20 % jitter, so replicas that failed together do not retry together. */
export function retryDelayMs(attempts: number, baseMs: number, random = Math.random): number {
  const delay = Math.min(baseMs * 2 ** (attempts - 1), MAX_DELAY_MS)
  return Math.round(delay * (0.8 + 0.4 * random()))
}

/** What is kept of an error: its code and SMTP status, never its message (it may quote an address). */
function errorSummary(error: unknown): string {
  const e = error as { code?: string; responseCode?: number; name?: string }
  return [e.code ?? e.name ?? 'Error', e.responseCode].filter(Boolean).join(' ').slice(0, 100)
}

export function startOutboxWorker(options: OutboxWorkerOptions): OutboxWorker {
  const { sql, cipher, transport, config, log, audit } = options
  let stopped = false
  let timer: NodeJS.Timeout | undefined
  let round: Promise<number> | null = null
  let lastPrune = 0

  async function settle(mail: outbox.ClaimedMail): Promise<void> {
    const detail = { template: mail.template, outboxId: mail.id, attempts: mail.attempts }
    // The batch's lease may have run out during the sends before this one: the lease covers one send.
    if (!(await outbox.renewClaim(sql, mail, LEASE_SECONDS))) return
    let sent: { file?: string }
    try {
      if (mail.unreadable) throw mail.unreadable
      const rendered = renderMail(
        mail.template as MailTemplate,
        mail.payload as unknown as MailData[MailTemplate],
        config,
      )
      sent = await transport.send({ id: mail.id, template: mail.template, to: mail.recipient, ...rendered })
    } catch (error) {
      await failed(mail, detail, error)
      return
    }
    // The server has the mail: a database error from here on is no failed send, so it is thrown (the
    // round ends) and the row is sent again once its lease ends: at least once, never given up.
    if (!(await outbox.markSent(sql, mail))) return
    const { file } = sent
    if (file) log.info({ event: 'mail.written', file, template: mail.template }, `mail written to ${file}`)
    await audit('mail.sent', mail.userId, detail)
  }

  /** A send that failed: given up (a permanent refusal, or the last attempt), or tried again later. */
  async function failed(mail: outbox.ClaimedMail, detail: AuditDetail, error: unknown): Promise<void> {
    const summary = errorSummary(error)
    const final = isPermanentFailure(error) || mail.attempts >= config.MAIL_MAX_ATTEMPTS
    log.warn({ event: 'mail.send_failed', ...detail, error: summary, final }, 'mail not sent')
    if (final) {
      await outbox.markFailed(sql, mail, summary)
      await audit('mail.failed', mail.userId, { ...detail, error: summary })
    } else {
      const delayMs = retryDelayMs(mail.attempts, config.MAIL_RETRY_BASE_MS)
      await outbox.markRetry(sql, mail, delayMs, summary)
      await audit('mail.retry_scheduled', mail.userId, { ...detail, error: summary, delayMs })
    }
  }

  async function runOnce(): Promise<number> {
    if (Date.now() - lastPrune > PRUNE_EVERY_MS) {
      lastPrune = Date.now()
      await outbox.pruneSettled(sql, RETENTION_DAYS)
    }
    const claimId = randomUUID()
    const claimed = await outbox.claimDue(sql, cipher, { claimId, limit: BATCH, leaseSeconds: LEASE_SECONDS })
    for (const mail of claimed) {
      if (stopped) break
      await settle(mail)
    }
    // Stopping (a deploy, a scale-down): what this round claimed and did not try is free again now,
    // for the next replica, instead of after the lease.
    if (stopped && claimed.length > 0) await outbox.releaseClaim(sql, claimId)
    return claimed.length
  }

  async function loop(): Promise<void> {
    if (stopped) return
    let handled = 0
    round = runOnce()
    try {
      handled = await round
    } catch (error) {
      // The database may be down for a while: keep polling, and say so.
      log.warn({ event: 'mail.outbox_unavailable', err: error }, 'outbox not reachable')
    } finally {
      round = null
    }
    if (stopped) return
    // A full batch means more may be due: go on at once.
    timer = setTimeout(loop, handled === BATCH ? 0 : config.MAIL_POLL_INTERVAL_MS)
    timer.unref()
  }

  timer = setTimeout(loop, 0)
  timer.unref()
  return {
    runOnce,
    async stop() {
      stopped = true
      clearTimeout(timer)
      await round?.catch(() => {})
    },
  }
}
