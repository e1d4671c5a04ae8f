import { randomUUID } from 'node:crypto'
import postgres from 'postgres'
import t from 'tap'
import { insertMail } from '../../repositories/outbox.js'
import { type App, build, startSmtpServer, testDatabaseUrl, waitUntil } from '../helper.js'

/**
 * Replicas and restarts: apps on one database, each with its own outbox worker (as two replicas
 * are), never send one row twice, and mail queued while no worker runs is sent by the next one.
 */

/** Queues `count` notices in one transaction (they become due together); their ids. */
async function queueMany(app: App, count: number, prefix: string): Promise<string[]> {
  const ids = Array.from({ length: count }, () => randomUUID())
  await app.sql.begin(async (tx) => {
    for (const [i, id] of ids.entries()) {
      const mail = { template: 'password-changed', userId: null, payload: { username: `${prefix}${i}` } }
      await insertMail(tx, app.cipher, { ...mail, id, recipient: `${prefix}${i}@example.com` })
    }
  })
  return ids
}

const pending = async (app: App, ids: string[]) => {
  const [row] = await app.sql<{ n: number }[]>`
    select count(*)::int as n from outbox where id in ${app.sql(ids)} and sent_at is null
  `
  return row?.n ?? -1
}

t.test('two workers on one database send each of 60 mails exactly once', async (t) => {
  // One SMTP server per replica: who sent what is visible, and the union must be exact.
  const smtpA = await startSmtpServer(t)
  const smtpB = await startSmtpServer(t)
  const a = await build(t, { env: { ...smtpA.env, MAIL_POLL_INTERVAL_MS: '10' } })
  await build(t, { env: { ...smtpB.env, MAIL_POLL_INTERVAL_MS: '10' } })
  const ids = await queueMany(a, 60, 'pair')
  await waitUntil('every row is sent', async () => (await pending(a, ids)) === 0, 20_000)
  // A duplicate would come after its row was settled by the other worker: give it time to show.
  await new Promise((resolve) => setTimeout(resolve, 500))
  const all = [...smtpA.mails, ...smtpB.mails]
  t.equal(all.length, 60, `60 mails in all (A ${smtpA.mails.length}, B ${smtpB.mails.length})`)
  const messageIds = new Set(all.map((m) => m.messageId))
  t.equal(messageIds.size, 60, 'no Message-ID twice')
  t.same([...messageIds].sort(), ids.map((id) => `<${id}@localhost>`).sort(), 'exactly the queued rows')
  t.ok(smtpA.mails.length > 0 && smtpB.mails.length > 0, 'both workers took part')
  const [attempts] = await a.sql<{ max: number }[]>`
    select max(attempts)::int as max from outbox where id in ${a.sql(ids)}
  `
  t.equal(attempts?.max, 1, 'no row was claimed twice')
})

t.test('a worker that stops mid-batch gives back what it did not try; the next app sends it', async (t) => {
  const smtp = await startSmtpServer(t)
  const first = await build(t, { env: smtp.env })
  const release = smtp.hold()
  const ids = await queueMany(first, 4, 'restart')
  // The worker claimed all four (one batch) and waits for the server's answer to the first.
  await waitUntil('all four are claimed', async () => {
    const [row] = await first.sql<{ n: number }[]>`
      select count(*)::int as n from outbox where id in ${first.sql(ids)} and claimed_until > now()
    `
    return row?.n === 4
  })
  const stopping = first.close()
  release()
  await stopping
  t.equal(smtp.mails.length, 1, 'the send in flight finished before the app closed')
  const db = postgres(await testDatabaseUrl(), { max: 1, onnotice: () => {} })
  t.teardown(() => db.end())
  const rows = await db<{ attempts: number; leased: boolean; sent: boolean }[]>`
    select attempts, claimed_until is not null as leased, sent_at is not null as sent
    from outbox where id in ${db(ids)} order by sent desc
  `
  t.same(
    rows,
    [
      { attempts: 1, leased: false, sent: true },
      ...Array(3).fill({ attempts: 0, leased: false, sent: false }),
    ],
    'no lease left behind, and what was given back counts no attempt',
  )
  await build(t, { env: { ...smtp.env, MAIL_POLL_INTERVAL_MS: '60000' } })
  await waitUntil('the rest is sent', async () => smtp.mails.length === 4)
  t.same(
    smtp.mails.map((m) => m.messageId).sort(),
    ids.map((id) => `<${id}@localhost>`).sort(),
    'each once, by the next app at its first round (its poll interval is a minute)',
  )
})

t.test('mail queued while no worker runs is sent when one starts', async (t) => {
  const smtp = await startSmtpServer(t)
  const idle = await build(t, { env: smtp.env })
  await idle.mail.worker?.stop()
  const ids = await queueMany(idle, 3, 'offline')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(smtp.mails.length, 0, 'nothing is sent without a worker')
  await idle.close()
  const next = await build(t, { env: smtp.env })
  await waitUntil('all three arrive', async () => smtp.mails.length === 3)
  t.equal(await pending(next, ids), 0)
})

t.test(
  'a worker whose lease ran out while it sent the batch before does not send a row another replica took',
  async (t) => {
    // One claim leases a whole batch (10 rows, LEASE_SECONDS) and the sends go one by one, each
    // bounded only by SMTP_TIMEOUTS: a server that answers DATA after 15 s outlasts the lease by the
    // ninth row. Here the first send is held, and the lease of the batch is made to run out meanwhile.
    const smtpA = await startSmtpServer(t)
    const smtpB = await startSmtpServer(t)
    const a = await build(t, { env: smtpA.env })
    const release = smtpA.hold()
    t.teardown(release)
    const ids = await queueMany(a, 2, 'slow')
    await waitUntil('A claimed both', async () => {
      const [row] = await a.sql<{ n: number }[]>`
      select count(*)::int as n from outbox where id in ${a.sql(ids)} and claimed_until > now()
    `
      return row?.n === 2
    })
    await a.sql`update outbox set claimed_until = now() - interval '1 second' where id in ${a.sql(ids)}`
    const b = await build(t, { env: smtpB.env })
    await waitUntil('B sent both', async () => (await pending(b, ids)) === 0)
    t.equal(smtpB.mails.length, 2, 'the other replica took the expired rows')
    release()
    await waitUntil('A finished the send it had started', async () => smtpA.mails.length >= 1)
    // A goes on with its batch at once; give a second send time to show.
    await new Promise((resolve) => setTimeout(resolve, 1000))
    t.equal(smtpA.mails.length, 1, 'A did not start a send for a row it no longer holds')
  },
)
