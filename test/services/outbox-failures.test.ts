import t from 'tap'
import { retryDelayMs } from '../../services/outbox.js'
import {
  build,
  type OutboxRow,
  outboxRow,
  queueTestMail as queue,
  scrapeMetrics,
  startSmtpServer,
  waitUntil,
} from '../helper.js'

/** The outbox worker when sending fails: retries with backoff, giving up, and the counters. */

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

t.test(
  'a row that cannot be read (payload not decryptable, or not JSON) does not hold up the mails claimed with it',
  async (t) => {
    const smtp = await startSmtpServer(t)
    const queuer = await build(t, { env: smtp.env })
    await queuer.mail.worker?.stop() // this app only queues
    // Two poison rows, oldest first: a payload encrypted for another row (as after a key is dropped
    // or a value is moved) and one that decrypts to something that is not JSON.
    const moved = await queue(queuer, 'moved@example.com')
    const notJson = await queue(queuer, 'not-json@example.com')
    const sealed = (value: string) =>
      queuer.cipher.encrypt(value, { table: 'outbox', column: 'payload', rowId: notJson })
    await queuer.sql`update outbox set payload = ${sealed('{}')} where id = ${moved}`
    await queuer.sql`update outbox set payload = ${sealed('not json')} where id = ${notJson}`
    await queuer.sql`
    update outbox set next_attempt_at = now() - interval '1 minute' where id in ${queuer.sql([moved, notJson])}
  `
    const good = [await queue(queuer, 'good1@example.com'), await queue(queuer, 'good2@example.com')]
    // One batch claims all four: the readable ones must be sent now, not after the two-minute lease.
    const app = await build(t, { env: { ...smtp.env, MAIL_RETRY_BASE_MS: '10', MAIL_MAX_ATTEMPTS: '2' } })
    await waitUntil('every row is settled', async () => {
      const [row] = await app.sql<{ n: number }[]>`
      select count(*)::int as n from outbox where sent_at is null and failed_at is null
    `
      return row?.n === 0
    }).catch(() => {})
    t.same(
      smtp.mails.map((m) => m.to[0]).sort(),
      ['good1@example.com', 'good2@example.com'],
      'the readable mails are sent',
    )
    for (const id of good) t.ok((await outboxRow(app, id))?.sentAt, 'a readable row is settled')
    for (const id of [moved, notJson]) {
      const row = await outboxRow(app, id)
      t.ok(row?.failedAt, 'an unreadable row is given up after MAIL_MAX_ATTEMPTS')
      t.match(row, { attempts: 2, recipient: null, payload: null, claimedUntil: null })
      t.match(row?.lastError, /^(DecryptionError|SyntaxError)$/, 'its error is a name, not a message')
    }
  },
)
