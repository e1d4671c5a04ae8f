import { randomBytes } from 'node:crypto'
import t from 'tap'
import {
  attemptRegister,
  build,
  type InjectResponse,
  register,
  startSmtpServer,
  TEST_PASSWORD,
  waitForMails,
} from '../../helper.js'

/**
 * Issue 15, OWASP ASVS 5.0 6.3.8: registration does not tell whether an email has an account. A new
 * and a registered address get the same status, body shape, headers and (within noise) time; the
 * registered address's owner is told by mail instead, and no second account exists.
 */

/** Names of one length, so the two answers are byte-for-byte the same size. */
const name = (prefix: string) => `${prefix}${randomBytes(5).toString('hex')}`
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
/** Headers that differ between any two answers: the date, the request id, the limit's counters. */
const VARYING = new Set(['date', 'x-request-id', 'ratelimit-remaining', 'ratelimit-reset', 'ratelimit'])

const shape = (res: InjectResponse) => {
  const { user } = res.json<{ user: Record<string, unknown> }>()
  return Object.fromEntries(Object.entries(user).map(([k, v]) => [k, typeof v]))
}
const steadyHeaders = (res: InjectResponse) =>
  Object.fromEntries(Object.entries(res.headers).filter(([k]) => !VARYING.has(k)))
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? 0
}

t.test('a registered email is answered exactly like a new one, and its owner is told', async (t) => {
  const smtp = await startSmtpServer(t)
  // A real bcrypt cost: skipping the hash for a known address would stand out by tens of milliseconds.
  const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '10' } })
  const ownerName = name('ow')
  const owner = await register(app, ownerName)
  const ownerEmail = `${ownerName}@example.com`

  const times = { fresh: [] as number[], existing: [] as number[] }
  const answers = { fresh: [] as InjectResponse[], existing: [] as InjectResponse[] }
  const timed = async (kind: 'fresh' | 'existing') => {
    const username = name('nu')
    const email = kind === 'fresh' ? `${name('ow')}@example.com` : ownerEmail.toUpperCase()
    const started = performance.now()
    const res = await attemptRegister(app, username, TEST_PASSWORD, { email })
    times[kind].push(performance.now() - started)
    answers[kind].push(res)
  }
  // Interleaved, in alternating order, so drift in the machine's load hits both alike.
  for (let i = 0; i < 15; i++) {
    const order = i % 2 ? (['fresh', 'existing'] as const) : (['existing', 'fresh'] as const)
    for (const kind of order) await timed(kind)
  }

  const [fresh, existing] = [answers.fresh[0], answers.existing[0]] as [InjectResponse, InjectResponse]
  t.same(
    [...answers.fresh, ...answers.existing].map((r) => r.statusCode),
    Array(30).fill(201),
    'every answer is 201',
  )
  t.same(shape(existing), shape(fresh), 'the same body keys and value types')
  t.same(steadyHeaders(existing), steadyHeaders(fresh), 'the same headers, length included')
  t.equal(existing.body.length, fresh.body.length, 'the same body size')
  const made = existing.json<{ user: Record<string, unknown> }>().user
  t.match(made, { id: UUID, role: 'user', emailVerified: false, email: ownerEmail })
  t.not(made.id, owner.id, 'not the owner’s id')
  t.ok(Math.abs(Date.parse(String(made.createdAt)) - Date.now()) < 60_000, 'created "now"')

  const [mf, me] = [median(times.fresh), median(times.existing)]
  t.comment(`median ms: new ${mf.toFixed(1)}, registered ${me.toFixed(1)}`)
  // Generous, as shared machines are noisy: a skipped hash (tens of milliseconds here) still fails it.
  const ratio = me / mf
  t.ok((ratio > 0.5 && ratio < 2) || Math.abs(me - mf) < 5, `timing within noise (ratio ${ratio.toFixed(2)})`)

  // The owner hears of it, once per attempt; no second account exists, nor a link for one.
  const told = await waitForMails(smtp, ownerEmail, /Someone tried to register/, 15)
  t.equal(told.length, 15)
  const [counts] = await app.sql`
    select (select count(*)::int from users where email_index = ${app.cipher.blindIndex(ownerEmail)}) as holders,
      (select count(*)::int from users where id in ${app.sql(answers.existing.map((r) => r.json().user.id))}) as ghosts,
      (select count(*)::int from users where username in ${app.sql(answers.existing.map((r) => r.json().user.username))}) as named
  `
  t.same(counts, { holders: 1, ghosts: 0, named: 0 }, 'the address still has one account')
  const linksToOwner = smtp.mails.filter((m) => m.to.includes(ownerEmail) && /Confirm/.test(m.subject))
  t.equal(linksToOwner.length, 1, 'only the owner’s own registration link')
  const [audit] = await app.sql`select count(*)::int as n from audit_events
    where event = 'auth.register.existing_email' and user_id = ${owner.id}`
  t.equal(audit?.n, 15, 'each attempt is audited on the owner’s account')
})

t.test('the owner’s mailbox is not flooded: the attempt notices stop at the mail budget', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await build(t, { env: { ...smtp.env, BCRYPT_COST: '4', MAIL_RATE_LIMIT_MAX: '2' } })
  const ownerName = name('ow')
  await register(app, ownerName)
  const statuses = []
  for (let i = 0; i < 4; i++) {
    const res = await attemptRegister(app, name('nu'), TEST_PASSWORD, {
      email: `${ownerName}@example.com`,
      remoteAddress: `198.51.100.${10 + i}`,
    })
    statuses.push(res.statusCode)
  }
  t.same(statuses, [201, 201, 201, 201], 'still 201 once the budget is spent (no oracle)')
  await waitForMails(smtp, `${ownerName}@example.com`, /Someone tried/, 2)
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(smtp.mails.filter((m) => /Someone tried/.test(m.subject)).length, 2, 'two notices, no more')
})
