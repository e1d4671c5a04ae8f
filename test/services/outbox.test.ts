import { randomUUID } from 'node:crypto'
import t from 'tap'
import { insertMail } from '../../repositories/outbox.js'
import {
  build,
  holdInTransaction,
  linkToken,
  outboxRow,
  queueTestMail as queue,
  startSmtpServer,
  waitUntil,
} from '../helper.js'

/**
 * The outbox worker against a real SMTP server: delivery, what the row keeps before and after, a
 * rolled-back queue, leases and locks. Failures and retries: outbox-failures.test.ts; replicas and
 * restarts: outbox-replicas.test.ts.
 */

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
  // Another worker's claim, still open: it holds the row's lock. Waiting for it would take a minute.
  const holder = await holdInTransaction(
    queuer.sql,
    (tx) => tx`select id from outbox where id = ${locked} for update`,
  )
  t.teardown(holder.release)
  const app = await build(t, { env: { ...smtp.env, DATABASE_LOCK_TIMEOUT_MS: '60000' } })
  // Well within the minute a claim waiting for the lock would take.
  await smtp.waitForMail('free@example.com', undefined, 15_000)
  t.equal((await outboxRow(app, locked))?.attempts, 0, 'the locked row was not taken')
  await holder.release()
  const mail = await smtp.waitForMail('locked@example.com')
  t.equal(mail.messageId, `<${locked}@localhost>`, 'taken once its lock is gone')
  t.equal((await outboxRow(app, free))?.attempts, 1)
})
