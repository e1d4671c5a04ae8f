import { randomUUID } from 'node:crypto'
import t from 'tap'
import { insertMail } from '../../repositories/outbox.js'
import { retryDelayMs } from '../../services/outbox.js'
import { type App, build, linkToken, scrapeMetrics, startSmtpServer, waitUntil } from '../helper.js'

/**
 * The outbox worker against a real SMTP server: delivery, what the row keeps before and after,
 * retries with backoff, giving up, leases, and the counters. Replicas and restarts: outbox-replicas.test.ts.
 */

interface OutboxRow {
  recipient: string | null
  payload: string | null
  attempts: number
  nextAttemptAt: Date
  claimedUntil: Date | null
  lastError: string | null
  sentAt: Date | null
  failedAt: Date | null
}

export async function outboxRow(app: App, id: string): Promise<OutboxRow | undefined> {
  const [row] = await app.sql<OutboxRow[]>`
    select recipient, payload, attempts, next_attempt_at, claimed_until, last_error, sent_at, failed_at
    from outbox where id = ${id}
  `
  return row
}

/** Queues a password-changed notice to `to` outside any request; its outbox id. */
async function queue(app: App, to: string): Promise<string> {
  const id = randomUUID()
  await insertMail(app.sql, app.cipher, {
    id,
    template: 'password-changed',
    userId: null,
    recipient: to,
    payload: { username: 'someone' },
  })
  return id
}

t.test(
  'a queued mail is delivered: stored encrypted until then, Message-ID is its outbox id, nothing kept after',
  async (t) => {
    const smtp = await startSmtpServer(t)
    const app = await build(t, { env: smtp.env })
    const id = randomUUID()
    const to = 'reset-me@example.com'
    const token = 'tOkEn_that_must_never_be_stored_in_clear_0123456789'
    await app.sql.begin(async (tx) => {
      const payload = { username: 'resetter', token, expiresInSeconds: 1800 }
      await insertMail(tx, app.cipher, {
        id,
        template: 'password-reset',
        userId: null,
        recipient: to,
        payload,
      })
      // Read in the queuing transaction, before any worker can see the row.
      const [row] = await tx<{ recipient: string; payload: string }[]>`
        select recipient, payload from outbox where id = ${id}
      `
      t.match(row?.recipient, /^enc:v1:/, 'the address is encrypted')
      t.match(row?.payload, /^enc:v1:/, 'the payload is encrypted')
      t.notMatch(JSON.stringify(row), /reset-me|example\.com|tOkEn|resetter/, 'no plaintext in the row')
    })
    const mail = await smtp.waitForMail(to, /Reset your password/)
    t.equal(mail.messageId, `<${id}@localhost>`, 'the Message-ID is the outbox id @ the MAIL_FROM domain')
    t.equal(linkToken(mail), token, 'the link carries the token in its fragment')
    t.match(mail.raw, /^From: Bulwark <bulwark@localhost>/m)
    await waitUntil('the row is settled', async () => Boolean((await outboxRow(app, id))?.sentAt))
    const row = await outboxRow(app, id)
    t.match(row, { recipient: null, payload: null, attempts: 1, lastError: null, claimedUntil: null })
  },
)

t.test('a mail queued in a transaction that rolls back is never sent', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: smtp.env })
  const ghost = randomUUID()
  await t.rejects(
    app.sql.begin(async (tx) => {
      const mail = { template: 'password-changed', userId: null, payload: { username: 'ghost' } }
      await insertMail(tx, app.cipher, { ...mail, id: ghost, recipient: 'ghost@example.com' })
      throw new Error('the change failed')
    }),
    /the change failed/,
  )
  const later = await queue(app, 'after-ghost@example.com')
  await smtp.waitForMail('after-ghost@example.com')
  await waitUntil('the later row is settled', async () => Boolean((await outboxRow(app, later))?.sentAt))
  t.equal(await outboxRow(app, ghost), undefined, 'no row')
  t.notOk(
    smtp.mails.some((m) => m.to.includes('ghost@example.com')),
    'nothing sent for it',
  )
})

t.test(
  'a temporary refusal (450) is retried with growing delays, keeps a code not an address, and is delivered once accepted',
  async (t) => {
    const smtp = await startSmtpServer(t)
    const app = await build(t, {
      env: { ...smtp.env, MAIL_RETRY_BASE_MS: '40', MAIL_MAX_ATTEMPTS: '20', METRICS_PORT: '0' },
    })
    const metrics = (await app.metrics?.listen()) ?? ''
    smtp.rejectRecipients(450)
    const id = await queue(app, 'later@example.com')
    // A row is read between attempts only: a claim counts its attempt before the retry is scheduled.
    const settledAfter = async (attempts: number) => {
      let row: OutboxRow | undefined
      await waitUntil(`attempt ${attempts} is settled`, async () => {
        row = await outboxRow(app, id)
        return (row?.attempts ?? 0) >= attempts && row?.claimedUntil === null
      })
      return row
    }
    const second = await settledAfter(2)
    const third = await settledAfter((second?.attempts ?? 2) + 1)
    t.equal(second?.lastError, 'EENVELOPE 450', 'the error code and SMTP status only')
    t.notMatch(JSON.stringify(second), /later@example/, 'not the server’s message, which quotes the address')
    t.ok(
      (third?.nextAttemptAt.getTime() ?? 0) > (second?.nextAttemptAt.getTime() ?? 0),
      'the next attempt moves later',
    )
    t.equal(third?.sentAt, null)
    t.ok(third?.recipient?.startsWith('enc:v1:'), 'the address is still kept, encrypted, for the retry')
    t.equal(smtp.mails.length, 0, 'nothing delivered while refused')

    smtp.rejectRecipients(null)
    await smtp.waitForMail('later@example.com')
    await waitUntil('the row is settled', async () => Boolean((await outboxRow(app, id))?.sentAt))
    const sent = await outboxRow(app, id)
    t.match(sent, { lastError: null, recipient: null, payload: null, failedAt: null })
    t.equal(smtp.mails.filter((m) => m.messageId === `<${id}@localhost>`).length, 1, 'delivered once')

    const delays = await app.sql<{ delayMs: number }[]>`
      select (detail->>'delayMs')::int as delay_ms from audit_events
      where event = 'mail.retry_scheduled' and detail->>'outboxId' = ${id} order by created_at
    `
    t.ok(delays.length >= 2, 'each failed attempt scheduled a retry')
    delays.forEach(({ delayMs }, i) => {
      const nominal = 40 * 2 ** i
      t.ok(
        delayMs >= nominal * 0.8 && delayMs <= nominal * 1.2,
        `retry ${i + 1}: ${delayMs} ms ≈ ${nominal} ms`,
      )
    })
    // Counted as its audit record is written, just after the row is marked.
    const sentCount = async () =>
      (await scrapeMetrics(metrics)).value('bulwark_mail_deliveries_total', { outcome: 'sent' })
    await waitUntil('the send is counted', async () => (await sentCount()) > 0)
    const scraped = await scrapeMetrics(metrics)
    t.equal(scraped.value('bulwark_mail_deliveries_total', { outcome: 'sent' }), 1)
    t.equal(scraped.value('bulwark_mail_deliveries_total', { outcome: 'retry' }), delays.length)
    t.equal(scraped.value('bulwark_mail_deliveries_total', { outcome: 'failed' }), 0)
  },
)

t.test('a permanent refusal (550) is given up after one attempt, and counted', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, METRICS_PORT: '0' } })
  const metrics = (await app.metrics?.listen()) ?? ''
  smtp.rejectRecipients(550)
  const id = await queue(app, 'nobody@example.com')
  await waitUntil('the row failed', async () => Boolean((await outboxRow(app, id))?.failedAt))
  const row = await outboxRow(app, id)
  t.match(row, { attempts: 1, lastError: 'EENVELOPE 550', sentAt: null, recipient: null, payload: null })
  t.equal(smtp.mails.length, 0)
  const failedCount = async () =>
    (await scrapeMetrics(metrics)).value('bulwark_mail_deliveries_total', { outcome: 'failed' })
  await waitUntil('the failure is counted', async () => (await failedCount()) > 0)
  const scraped = await scrapeMetrics(metrics)
  t.equal(scraped.value('bulwark_mail_deliveries_total', { outcome: 'failed' }), 1)
  t.equal(scraped.value('bulwark_mail_deliveries_total', { outcome: 'retry' }), 0)
  t.equal(scraped.value('bulwark_security_events_total', { event: 'mail.failed' }), 1)
})

t.test('MAIL_MAX_ATTEMPTS temporary failures give up too', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, MAIL_RETRY_BASE_MS: '10', MAIL_MAX_ATTEMPTS: '3' } })
  smtp.rejectRecipients(451)
  const id = await queue(app, 'busy@example.com')
  await waitUntil('the row failed', async () => Boolean((await outboxRow(app, id))?.failedAt))
  t.match(await outboxRow(app, id), { attempts: 3, lastError: 'EENVELOPE 451', recipient: null })
  smtp.rejectRecipients(null)
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(smtp.mails.length, 0, 'a failed row is never tried again')
})

t.test('an expired lease is claimed again; a live lease is left to its holder', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: smtp.env })
  const expired = randomUUID()
  const held = randomUUID()
  await app.sql.begin(async (tx) => {
    for (const [id, to] of [
      [expired, 'expired@example.com'],
      [held, 'held@example.com'],
    ] as const) {
      const payload = { username: 'leased' }
      await insertMail(tx, app.cipher, {
        id,
        template: 'password-changed',
        userId: null,
        recipient: to,
        payload,
      })
    }
    // One worker died mid-send a while ago; another is sending right now.
    await tx`update outbox set attempts = 1, claim_id = ${randomUUID()}, claimed_until = now() - interval '1 second' where id = ${expired}`
    await tx`update outbox set attempts = 1, claim_id = ${randomUUID()}, claimed_until = now() + interval '1 hour' where id = ${held}`
  })
  const mail = await smtp.waitForMail('expired@example.com')
  t.equal(mail.messageId, `<${expired}@localhost>`, 'sent again under the same Message-ID')
  await waitUntil('the expired row is settled', async () => Boolean((await outboxRow(app, expired))?.sentAt))
  t.equal((await outboxRow(app, expired))?.attempts, 2)
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.notOk(
    smtp.mails.some((m) => m.to.includes('held@example.com')),
    'the live lease is not taken',
  )
  t.match(await outboxRow(app, held), { attempts: 1, sentAt: null })
})

t.test('a row locked by another claim is skipped, not waited for', async (t) => {
  const smtp = await startSmtpServer(t)
  const queuer = await build(t, { env: smtp.env })
  await queuer.mail.worker?.stop() // this app only queues
  const locked = await queue(queuer, 'locked@example.com')
  const free = await queue(queuer, 'free@example.com')
  let release = () => {}
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  let holding = () => {}
  const held = new Promise<void>((resolve) => {
    holding = resolve
  })
  // Another worker's claim, still open: it holds the row's lock. Waiting for it would take a minute.
  const holder = queuer.sql.begin(async (tx) => {
    await tx`select id from outbox where id = ${locked} for update`
    holding()
    await released
  })
  t.teardown(release)
  await held
  const app = await build(t, { env: { ...smtp.env, DATABASE_LOCK_TIMEOUT_MS: '60000' } })
  // Well within the minute a claim waiting for the lock would take.
  await smtp.waitForMail('free@example.com', undefined, 15_000)
  t.equal((await outboxRow(app, locked))?.attempts, 0, 'the locked row was not taken')
  release()
  await holder
  const mail = await smtp.waitForMail('locked@example.com')
  t.equal(mail.messageId, `<${locked}@localhost>`, 'taken once its lock is gone')
  t.equal((await outboxRow(app, free))?.attempts, 1)
})

t.test('retryDelayMs doubles from the base, caps at an hour, and jitters within ±20 %', async (t) => {
  const mid = () => 0.5
  t.same(
    [1, 2, 3, 4].map((n) => retryDelayMs(n, 1000, mid)),
    [1000, 2000, 4000, 8000],
  )
  t.equal(
    retryDelayMs(1, 1000, () => 0),
    800,
    'lowest jitter',
  )
  t.equal(
    retryDelayMs(1, 1000, () => 0.999_999),
    1200,
    'highest jitter',
  )
  t.equal(retryDelayMs(30, 30_000, mid), 3_600_000, 'capped at an hour')
  const top = retryDelayMs(50, 30_000, () => 0.999_999)
  t.ok(top > 4_319_000 && top <= 4_320_000, `the cap jitters too, at most 1.2 h: ${top}`)
  for (let i = 0; i < 200; i++) {
    const d = retryDelayMs(3, 100)
    if (d < 320 || d > 480) t.fail(`jitter out of bounds: ${d}`)
  }
})
