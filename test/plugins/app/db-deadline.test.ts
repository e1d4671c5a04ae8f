import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { attemptLogin, attemptRegister, build, refreshWith, uniqueName } from '../../helper.js'

const BOUNDS = {
  DATABASE_POOL_MAX: '1',
  DATABASE_STATEMENT_TIMEOUT_MS: '1000',
  DATABASE_LOCK_TIMEOUT_MS: '500',
  REFRESH_REUSE_GRACE_SECONDS: '0',
}

/**
 * Sends the retry again while it is itself answered 503 (the late work still queued on a loaded
 * machine): a 503 means "try again", and the property is what the first non-503 answer is.
 */
async function retryPast503<T extends { statusCode: number }>(send: () => Promise<T>): Promise<T> {
  let reply = await send()
  for (let i = 0; i < 10 && reply.statusCode === 503; i++) {
    await sleep(500)
    reply = await send()
  }
  return reply
}

/** Keeps the app's only pool connection busy (an idle transaction) for `ms`. */
const holdPool = (app: Awaited<ReturnType<typeof build>>, ms: number) =>
  app.sql.begin(async () => {
    await sleep(ms)
  })

t.test('a registration answered 503 at the deadline does not commit behind the client', async (t) => {
  const app = await build(t, { env: BOUNDS })
  const username = uniqueName('late')
  const held = holdPool(app, 2500)
  const first = await attemptRegister(app, username)
  t.equal(first.statusCode, 503, 'the deadline answered')
  await held
  await sleep(300) // the queued work has run by now
  const retry = await retryPast503(() => attemptRegister(app, username))
  t.equal(retry.statusCode, 201, 'the retry creates the account: the late transaction rolled back')
})

t.test('a refresh answered 503 at the deadline is not a reuse when the client retries', async (t) => {
  const app = await build(t, { env: BOUNDS })
  const username = uniqueName('lateref')
  // Set-up on a one-connection pool: a loaded machine may answer it 503 too (seen in a full run).
  t.equal((await retryPast503(() => attemptRegister(app, username))).statusCode, 201, 'set-up: registered')
  const signedIn = await retryPast503(() => attemptLogin(app, username))
  t.equal(signedIn.statusCode, 200, 'set-up: signed in')
  const refreshToken = signedIn.cookies.find((c) => c.name.endsWith('refresh_token'))?.value ?? ''
  const held = holdPool(app, 2500)
  t.equal((await refreshWith(app, refreshToken)).statusCode, 503)
  await held
  await sleep(300)
  const retry = await retryPast503(() => refreshWith(app, refreshToken))
  t.equal(retry.statusCode, 200, 'the token was not consumed behind the 503')
  const [reuse] = await app.sql<{ n: number }[]>`
    select count(*)::int as n from audit_events where event = 'auth.refresh.reuse_detected'
  `
  t.equal(reuse?.n, 0, 'and no theft was detected')
})
