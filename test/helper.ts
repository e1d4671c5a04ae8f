import { spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import type { Static } from '@sinclair/typebox'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import postgres from 'postgres'
import t, { type Test } from 'tap'
import { type App, buildApp } from '../app.js'
import { loadConfig } from '../lib/config.js'
import { splitRoles } from '../lib/embedded-postgres.js'
import { createLogger } from '../lib/logger.js'
import { totpCode } from '../lib/totp.js'
import { insertMail } from '../repositories/outbox.js'
import type { PublicUser, SignedIn, UserEnvelope } from '../schemas/auth.js'
import type { Problem } from '../schemas/common.js'
import type { Config } from '../schemas/env.js'

export type { App }
export { totpCode }
/** What app.inject answers. */
export type InjectResponse = LightMyRequestResponse

/** The server every test file talks to: the machine's PostgreSQL or the embedded one (npm test). */
export const ADMIN_URL = process.env.DATABASE_URL ?? ''
if (!ADMIN_URL) throw new Error('DATABASE_URL is not set: run the tests with `npm test`')

export function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL)
  url.pathname = `/${name}`
  return url.toString()
}

/**
 * The `skip` option of a test that needs a service this machine may lack (Redis, redis-server,
 * openssl): skipped on a developer's machine, but under CI=true a missing service fails the run
 * instead of letting the closing line say everything passed.
 */
export const skipUnlessCI = (reason: string | false): string | false =>
  reason && process.env.CI === 'true' ? false : reason

/** Creates an empty database on the test server, dropped when the test file ends. */
export async function createDatabase(): Promise<string> {
  const name = `bulwark_t_${process.pid}_${randomBytes(4).toString('hex')}`
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database ${name}`)
  await admin.end()
  t.teardown(async () => {
    const drop = postgres(ADMIN_URL, { max: 1, onnotice: () => {} })
    await drop.unsafe(`drop database if exists ${name} with (force)`)
    await drop.end()
  })
  return databaseUrl(name)
}

let fileDatabase: Promise<string> | undefined
/** One isolated database per test file (files run in parallel), created on first use. */
export function testDatabaseUrl(): Promise<string> {
  fileDatabase ??= createDatabase()
  return fileDatabase
}

/**
 * For a child process that loads our sources through another compiler (tsx, Node's type stripping)
 * or from dist/: tap's coverage of it would be merged by byte offset into the coverage of the same
 * files as tap compiles them, and scrambles it (a full run lost about a third of services/ that way).
 */
export const WITHOUT_COVERAGE = { _TAPJS_PROCESSINFO_COVERAGE_: '0' } as const

/** Runs `scripts/<script>` with the test's Node; stdout and stderr together, and the exit code. */
export async function runScript(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; out: string }> {
  const root = fileURLToPath(new URL('..', import.meta.url))
  const child = spawn(process.execPath, [join(root, 'scripts', script), ...args], { cwd: root, env })
  let out = ''
  child.stdout.on('data', (c) => {
    out += c
  })
  child.stderr.on('data', (c) => {
    out += c
  })
  const [code] = await once(child, 'exit')
  return { code, out }
}

/**
 * The environment of a server.ts process a test starts: loopback on a free port, JSON logs, the
 * file's database, and NODE_ENV=test, so a developer's .env in the repository root is not read.
 */
export async function serverProcessEnv(extra: Record<string, string> = {}): Promise<NodeJS.ProcessEnv> {
  return {
    ...process.env,
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    DATABASE_URL: await testDatabaseUrl(),
    ...extra,
  }
}

/**
 * Every request from app.inject comes from 127.0.0.1, so the production limits would throttle
 * ordinary tests; tests of the limits set their own values.
 */
const GENEROUS_LIMITS = {
  RATE_LIMIT_MAX: '100000',
  LOGIN_RATE_LIMIT_MAX: '10000',
  LOGIN_ACCOUNT_MAX_FAILURES: '10000',
  REGISTER_RATE_LIMIT_MAX: '10000',
  REFRESH_RATE_LIMIT_MAX: '100000',
  PASSKEY_LOGIN_RATE_LIMIT_MAX: '100000',
  API_KEY_RATE_LIMIT_MAX: '100000',
  // Load shedding measures this process's event loop, which test files share with a busy machine
  // (boot-time schema compiles stall it past 1 s under CI load): off, except in its own tests.
  UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
  MAIL_RATE_LIMIT_MAX: '10000',
  TOKEN_RATE_LIMIT_MAX: '10000',
  // Without SMTP_URL mails become .eml files: in a directory of this process, not the checkout's .data/.
  MAIL_DIR: join(tmpdir(), `bulwark-test-mail-${process.pid}`),
}

/**
 * Production refuses to start without mail settings: production-mode tests get an SMTP server that
 * never answers (nothing listens on port 9), so mail waits in the outbox, unless a test says otherwise.
 */
export const PRODUCTION_MAIL = { SMTP_URL: 'smtp://127.0.0.1:9', PUBLIC_APP_URL: 'https://app.example.test' }

/**
 * Data keys and the password pepper for tests: not the public development values, so production-mode
 * tests can use them.
 */
export const TEST_DATA_KEYS = {
  DATA_ENCRYPTION_KEYS: `t1:${Buffer.alloc(32, 1).toString('base64')}`,
  DATA_INDEX_KEY: Buffer.alloc(32, 2).toString('base64'),
  PASSWORD_PEPPER: Buffer.alloc(32, 3).toString('base64'),
}

/**
 * A signing secret for production-mode tests: production refuses the development secret and
 * patterned ones ('p'.repeat(40)), so this is 32 bytes that look random.
 */
export const TEST_JWT_SECRET = Buffer.from(
  Array.from({ length: 32 }, (_, i) => (i * 73 + 41) % 256),
).toString('base64')

let fileRoles: Promise<{ DATABASE_URL: string; DATABASE_MIGRATION_URL: string }> | undefined
/**
 * The test file's database as the service meets it in production: migrations through the migration
 * role, requests through the least-privileged runtime role (sql/roles.sql), made once per file.
 */
export async function testRoleUrls() {
  fileRoles ??= testDatabaseUrl().then(splitRoles)
  return fileRoles
}

export async function testConfig(env: Record<string, string> = {}): Promise<Config> {
  // A test that points DATABASE_URL elsewhere (another server) connects there as it says.
  const database = env.DATABASE_URL === undefined ? await testRoleUrls() : {}
  return loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    ...database,
    ...TEST_DATA_KEYS,
    ...GENEROUS_LIMITS,
    ...(env.NODE_ENV === 'production' ? PRODUCTION_MAIL : {}),
    ...env,
  })
}

/** Collects every log line the app writes, parsed, for assertions about logging. */
export function logCapture() {
  const lines: Record<string, unknown>[] = []
  const raw: string[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        raw.push(line)
        lines.push(JSON.parse(line))
      }
      done()
    },
  })
  return { lines, raw, stream }
}

export interface BuildTestOptions {
  env?: Record<string, string>
  logStream?: Writable
  /** Runs before ready(): add test-only routes or hooks here. */
  setup?: (app: App) => void | Promise<void>
}

/** Builds the real app exactly as server.ts does, closed when the test ends. */
export async function build(test: Test, options: BuildTestOptions = {}): Promise<App> {
  const config = await testConfig(options.env)
  const logger = options.logStream ? createLogger({ LOG_LEVEL: 'info' }, options.logStream) : undefined
  const app = await buildApp(config, logger ? { logger } : {})
  test.teardown(() => app.close())
  await options.setup?.(app)
  await app.ready()
  return app
}

// ---------------------------------------------------------------------------------------------
// Users: names, sign-up and sign-in through the API.

/**
 * The password every test user gets unless a test needs another one on purpose: it meets the policy
 * (15+ characters, not on the blocklist, no username, email or service name in it).
 */
export const TEST_PASSWORD = 'Tidy-Lantern-Orbit-47'
/** A second valid password, for changes. */
export const OTHER_PASSWORD = 'Brisk-Harbor-Meadow-58'

let nameSeq = 0
/**
 * A username no other test (nor a parallel file, nor an earlier run sharing Redis) has used:
 * `prefix`, the process id, the time and a counter, well within the 32-character limit.
 */
export function uniqueName(prefix: string): string {
  return `${prefix}${process.pid % 10000}_${Date.now() % 100000}_${++nameSeq}`
}

/** The Authorization header for an access token. */
export const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

export interface AuthRequestOptions {
  /** Defaults to `<username>@example.com`. */
  email?: string
  /** The client address the request comes from (rate limits count per address). */
  remoteAddress?: string
}

/** The answer to a registration through the API, whatever it is. */
export function attemptRegister(
  app: App,
  username: string,
  password = TEST_PASSWORD,
  options: AuthRequestOptions = {},
): Promise<InjectResponse> {
  return app.inject({
    method: 'POST',
    url: '/api/auth/register',
    payload: { username, email: options.email ?? `${username}@example.com`, password },
    ...(options.remoteAddress ? { remoteAddress: options.remoteAddress } : {}),
  })
}

/** Registers a user through the API; anything but 201 fails the calling test loudly. */
export async function register(
  app: App,
  username: string,
  password = TEST_PASSWORD,
  options: AuthRequestOptions = {},
): Promise<PublicUser> {
  const res = await attemptRegister(app, username, password, options)
  if (res.statusCode !== 201) throw new Error(`register ${username}: ${res.statusCode} ${res.body}`)
  return res.json<Static<typeof UserEnvelope>>().user
}

/** The answer to a login attempt through the API, whatever it is. */
export function attemptLogin(
  app: App,
  username: string,
  password = TEST_PASSWORD,
  options: Pick<AuthRequestOptions, 'remoteAddress'> = {},
): Promise<InjectResponse> {
  return app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { username, password },
    ...(options.remoteAddress ? { remoteAddress: options.remoteAddress } : {}),
  })
}

/** The value a response's Set-Cookie gives the cookie `name`, if it sets one. */
export const cookieValue = (res: InjectResponse, name: string): string | undefined =>
  res.cookies.find((c) => c.name === name)?.value

/**
 * Logs in through the API (anything but 200 fails the calling test loudly): the response, its
 * access token, the refresh token and every cookie it set.
 */
export async function login(
  app: App,
  username: string,
  password = TEST_PASSWORD,
  options: Pick<AuthRequestOptions, 'remoteAddress'> = {},
) {
  const res = await attemptLogin(app, username, password, options)
  if (res.statusCode !== 200) throw new Error(`login ${username}: ${res.statusCode} ${res.body}`)
  const cookies = Object.fromEntries(res.cookies.map((c) => [c.name, c.value])) as Record<string, string>
  return {
    res,
    accessToken: res.json<Static<typeof SignedIn>>().accessToken,
    /** The refresh cookie's value, whatever its name (prefixed in secure mode). */
    refreshToken: res.cookies.find((c) => c.name.endsWith('refresh_token'))?.value ?? '',
    cookies,
  }
}

/** A session started by login(). */
export type Session = Awaited<ReturnType<typeof login>>

/** POST /api/auth/refresh with `token` as the refresh cookie. */
export const refreshWith = (app: App, token: string) =>
  app.inject({ method: 'POST', url: '/api/auth/refresh', cookies: { refresh_token: token } })

/** A signed-in user: who they are, their session, and an inject that sends their access token. */
export interface SignedInUser {
  id: string
  username: string
  role: PublicUser['role']
  accessToken: string
  refreshToken: string
  /** The cookies login set (access_token, refresh_token or their prefixed names). */
  cookies: Record<string, string>
  /** The Authorization header of this user's access token. */
  headers: { authorization: string }
  /** app.inject with this user's Bearer token added to the request's headers. */
  inject(options: InjectOptions | string): Promise<InjectResponse>
}

export interface SignUpOptions extends AuthRequestOptions {
  /** The exact username (default: uniqueName(prefix)). */
  username?: string
  password?: string
  /** 'admin' promotes the user in the database before logging in. */
  role?: PublicUser['role']
}

/** app.inject as a signed-in user (or with a bare access token): their Bearer header is added. */
export function injectAs(app: App, user: { accessToken: string } | string) {
  const authorization = bearer(typeof user === 'string' ? user : user.accessToken)
  return (options: InjectOptions | string): Promise<InjectResponse> => {
    const opts = typeof options === 'string' ? { url: options } : options
    return app.inject({ ...opts, headers: { ...opts.headers, ...authorization } })
  }
}

/** Registers a fresh user (named from `prefix`) through the API and logs them in. */
export async function signUp(app: App, prefix = 'user', options: SignUpOptions = {}): Promise<SignedInUser> {
  const username = options.username ?? uniqueName(prefix)
  const password = options.password ?? TEST_PASSWORD
  const user = await register(app, username, password, options)
  let role = user.role
  if (options.role && options.role !== role) {
    await app.sql`update users set role = ${options.role} where id = ${user.id}`
    role = options.role
  }
  const session = await login(app, username, password, options)
  return {
    id: user.id,
    username,
    role,
    accessToken: session.accessToken,
    refreshToken: session.refreshToken,
    cookies: session.cookies,
    headers: bearer(session.accessToken),
    inject: injectAs(app, session),
  }
}

/** Resolves once `check()` holds, polling every 20 ms; throws `what` after `timeoutMs`. */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Runs `statement` in an open transaction of `sql` and keeps it open (and its locks held) until release(). */
export async function holdInTransaction(
  sql: postgres.Sql,
  statement: (tx: postgres.Sql) => Promise<unknown>,
) {
  let release = () => {}
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  let holding = () => {}
  const held = new Promise<void>((resolve) => {
    holding = resolve
  })
  const done = sql.begin(async (tx) => {
    await statement(tx as unknown as postgres.Sql)
    holding()
    await released
  })
  await Promise.race([held, done])
  return {
    release: async () => {
      release()
      await done
    },
  }
}

/** Resolves once `count` connections of the app's database wait on a row lock (requests parked mid-transaction). */
export async function waitForLockWaiter(app: App, timeoutMs = 5000, count = 1): Promise<void> {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    const [row] = await app.sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock'
    `
    if ((row?.n ?? 0) >= count) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`fewer than ${count} requests came to wait on the lock`)
}

// ---------------------------------------------------------------------------------------------
// Two-factor authentication and tokens.

/** The claims of a JWT, decoded without checking it (the service checks; tests read). */
export function tokenClaims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString())
}

/** Enrols and confirms a TOTP authenticator for a signed-in user: its secret and recovery codes. */
export async function enrolTotp(app: App, user: Pick<SignedInUser, 'id' | 'inject'>) {
  const started = await user.inject({ method: 'POST', url: '/api/auth/mfa/totp' })
  if (started.statusCode !== 201) throw new Error(`enrol: ${started.statusCode} ${started.body}`)
  const { secret } = started.json<{ secret: string }>()
  const confirmed = await user.inject({
    method: 'POST',
    url: '/api/auth/mfa/totp/confirm',
    payload: { code: totpCode(secret) },
  })
  if (confirmed.statusCode !== 200) throw new Error(`confirm: ${confirmed.statusCode} ${confirmed.body}`)
  await forgetUsedTotpSteps(app, user.id)
  return { secret, recoveryCodes: confirmed.json<{ recoveryCodes: string[] }>().recoveryCodes }
}

/**
 * As if the last accepted code were minutes old: a test may then use the current code again
 * without waiting 30 seconds for the next step (the replay rule itself is tested on its own).
 */
export async function forgetUsedTotpSteps(app: App, userId: string): Promise<void> {
  await app.sql`update mfa_totp set last_step = last_step - 10 where user_id = ${userId}`
}

/** POST /api/auth/mfa/verify with a token and a code, from an optional address and cookies. */
export function verifyMfa(
  app: App,
  mfaToken: string,
  code: string,
  options: { remoteAddress?: string; cookies?: Record<string, string> } = {},
): Promise<InjectResponse> {
  return app.inject({ method: 'POST', url: '/api/auth/mfa/verify', payload: { mfaToken, code }, ...options })
}

// ---------------------------------------------------------------------------------------------
// Problems (RFC 9457): every error answer.

/** Asserts that `items` is not empty and that every item passes: `every()` on an empty list proves nothing. */
export function expectEvery<T>(
  t: Test,
  items: readonly T[],
  predicate: (item: T, index: number) => boolean,
  label: string,
): void {
  t.ok(items.length > 0, `${label} (the list is not empty)`)
  t.ok(items.every(predicate), label)
}

/** The Content-Type of every problem answer. */
export const PROBLEM_TYPE = /^application\/problem\+json; charset=utf-8$/

/** The members every problem body has (RFC 9457 and our requestId), in the order they are sent. */
export const PROBLEM_KEYS = ['type', 'title', 'status', 'detail', 'instance', 'requestId']

/**
 * Asserts a problem answer: the status, the problem+json Content-Type and an RFC 9457 body with
 * `status` matching; with `type`, the problem type too. Returns the body.
 */
export function expectProblem(
  t: Test,
  res: InjectResponse,
  status: number,
  type?: string,
  label = `${status} problem`,
): Problem {
  t.equal(res.statusCode, status, `${label}: status ${status}`)
  t.match(res.headers['content-type'], PROBLEM_TYPE, `${label}: problem+json`)
  const body = res.json<Problem>()
  t.match(
    body,
    { type: String, title: String, detail: String, instance: String, requestId: String },
    `${label}: RFC 9457 body`,
  )
  t.equal(body.status, status, `${label}: body status`)
  if (type !== undefined) t.equal(body.type, type, `${label}: type ${type}`)
  return body
}

// ---------------------------------------------------------------------------------------------
// Metrics: scraping the metrics listener and reading the Prometheus text format.

/** One sample of a Prometheus text exposition. */
export interface MetricSample {
  name: string
  labels: Record<string, string>
  value: number
}

const SAMPLE_LINE = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/
const LABEL_PAIR = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g

/** Parses the Prometheus text format (version 0.0.4): every sample, comments left aside. */
export function parseMetrics(text: string): MetricSample[] {
  const samples: MetricSample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = SAMPLE_LINE.exec(line)
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, key = '', raw = ''] of (match[2] ?? '').matchAll(LABEL_PAIR)) {
      labels[key] = raw.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    }
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) })
  }
  return samples
}

/** GETs a metrics URL over HTTP: the raw text, its content type, and a lookup of one sample's value. */
export async function scrapeMetrics(url: string) {
  const res = await fetch(url)
  if (res.status !== 200) throw new Error(`scrape ${url}: ${res.status}`)
  const text = await res.text()
  const samples = parseMetrics(text)
  /** The value of the sample named `name` whose labels include `labels` (0 when there is none). */
  const value = (name: string, labels: Record<string, string> = {}) =>
    samples
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((sum, s) => sum + s.value, 0)
  return { text, contentType: res.headers.get('content-type'), samples, value }
}

// ---------------------------------------------------------------------------------------------
// Mail: a real SMTP server in the test process, and the mails it received.

export interface ReceivedMail {
  to: string[]
  subject: string
  text: string
  html: string
  messageId: string
  raw: string
  /** The connection was TLS (upgraded with STARTTLS) when the mail came. */
  secure: boolean
}

export interface TestSmtpServer {
  /** The settings that point an app at this server, with a fast outbox poll. */
  env: { SMTP_URL: string; MAIL_POLL_INTERVAL_MS: string }
  mails: ReceivedMail[]
  /** The first mail (received or still to come) to `to` whose subject matches, or a failed test after `timeoutMs`. */
  waitForMail(to: string, subject?: RegExp, timeoutMs?: number): Promise<ReceivedMail>
  /** Refuse RCPT TO with this SMTP status (e.g. 450 for a retry, 550 for a permanent refusal); null accepts. */
  rejectRecipients(status: number | null): void
  /** Holds every message's DATA unanswered until the function it returns is called (a slow server). */
  hold(): () => void
}

export interface SmtpServerOptions {
  /** Offer STARTTLS with this certificate and key (PEM): off by default, so the client sends in the clear. */
  tls?: { cert: string; key: string }
  /** The address to listen on (default 127.0.0.1). */
  host?: string
}

/** Starts an SMTP server (the smtp-server package) on 127.0.0.1, closed when the test ends. */
export async function startSmtpServer(test: Test, options: SmtpServerOptions = {}): Promise<TestSmtpServer> {
  const { SMTPServer } = await import('smtp-server')
  const { simpleParser } = await import('mailparser')
  const mails: ReceivedMail[] = []
  const waiters = new Set<() => void>()
  let rejectStatus: number | null = null
  let held: Promise<void> = Promise.resolve()
  const server = new SMTPServer({
    authOptional: true,
    disableReverseLookup: true,
    ...(options.tls ? { cert: options.tls.cert, key: options.tls.key } : { disabledCommands: ['STARTTLS'] }),
    logger: false,
    onRcptTo(address, _session, callback) {
      if (rejectStatus === null) return callback()
      // Quoting the address, as real servers do (`<x@y>: Recipient address rejected`).
      const message = `<${address.address}>: refused by the test`
      const error = Object.assign(new Error(message), { responseCode: rejectStatus })
      return callback(error)
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (chunk: Buffer) => chunks.push(chunk))
      stream.on('end', async () => {
        await held
        const raw = Buffer.concat(chunks).toString('utf8')
        simpleParser(raw).then(
          (parsed) => {
            mails.push({
              to: session.envelope.rcptTo.map((r) => r.address.toLowerCase()),
              subject: parsed.subject ?? '',
              text: parsed.text ?? '',
              html: typeof parsed.html === 'string' ? parsed.html : '',
              messageId: parsed.messageId ?? '',
              raw,
              secure: session.secure,
            })
            for (const wake of waiters) wake()
            callback()
          },
          (error: Error) => callback(error),
        )
      })
    },
  })
  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  test.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const { port } = server.server.address() as { port: number }
  const find = (to: string, subject?: RegExp) =>
    mails.find((m) => m.to.includes(to.toLowerCase()) && (!subject || subject.test(m.subject)))
  return {
    env: { SMTP_URL: `smtp://${host}:${port}`, MAIL_POLL_INTERVAL_MS: '50' },
    mails,
    rejectRecipients(status) {
      rejectStatus = status
    },
    hold() {
      let release = () => {}
      held = new Promise<void>((resolve) => {
        release = resolve
      })
      return release
    },
    waitForMail(to, subject, timeoutMs = 10_000) {
      const found = find(to, subject)
      if (found) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        const wake = () => {
          const mail = find(to, subject)
          if (!mail) return
          cleanup()
          resolve(mail)
        }
        const timer = setTimeout(() => {
          cleanup()
          reject(new Error(`no mail to ${to}${subject ? ` matching ${subject}` : ''} within ${timeoutMs} ms`))
        }, timeoutMs)
        const cleanup = () => {
          clearTimeout(timer)
          waiters.delete(wake)
        }
        waiters.add(wake)
      })
    },
  }
}

/** An outbox row as the worker leaves it (the address and payload encrypted, or NULL once settled). */
export interface OutboxRow {
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

/** Queues a password-changed notice to `to` outside any request (as a change's transaction would); its outbox id. */
export async function queueTestMail(app: App, to: string): Promise<string> {
  const id = randomUUID()
  const payload = { username: 'someone' }
  await insertMail(app.sql, app.cipher, {
    id,
    template: 'password-changed',
    userId: null,
    recipient: to,
    payload,
  })
  return id
}

/** The token in a mail's link: after `#token=` (never in a query string). */
export function linkToken(mail: Pick<ReceivedMail, 'text'>): string {
  const match = /https?:\/\/\S+#token=([A-Za-z0-9_-]+)/.exec(mail.text)
  if (!match?.[1]) throw new Error(`no link with a token in: ${mail.text}`)
  return match[1]
}

/** Every mail to `to` whose subject matches, once there are at least `count` (the newest last). */
export async function waitForMails(
  smtp: Pick<TestSmtpServer, 'mails'>,
  to: string,
  subject: RegExp,
  count: number,
  timeoutMs = 10_000,
): Promise<ReceivedMail[]> {
  const matching = () => smtp.mails.filter((m) => m.to.includes(to.toLowerCase()) && subject.test(m.subject))
  await waitUntil(`${count} mails to ${to} match ${subject}`, () => matching().length >= count, timeoutMs)
  return matching()
}

// ---------------------------------------------------------------------------------------------
// Password reset by mail.

/** The subject of the mail that carries a reset link. */
export const RESET_MAIL = /Reset your password/

/** POST /api/auth/password/forgot for an address, whatever the answer. */
export function forgotPassword(
  app: App,
  email: string,
  options: Pick<AuthRequestOptions, 'remoteAddress'> = {},
): Promise<InjectResponse> {
  return app.inject({ method: 'POST', url: '/api/auth/password/forgot', payload: { email }, ...options })
}

/** POST /api/auth/password/reset, whatever the answer. */
export function resetPassword(
  app: App,
  body: { token: string; newPassword: string; code?: string },
  options: Pick<AuthRequestOptions, 'remoteAddress'> = {},
): Promise<InjectResponse> {
  return app.inject({ method: 'POST', url: '/api/auth/password/reset', payload: body, ...options })
}

/** The mail number `index` (0-based) to `to` whose subject matches, waiting up to `timeoutMs` for it. */
export async function nthMail(
  smtp: TestSmtpServer,
  to: string,
  subject: RegExp,
  index: number,
  timeoutMs = 10_000,
): Promise<ReceivedMail> {
  return (await waitForMails(smtp, to, subject, index + 1, timeoutMs))[index] as ReceivedMail
}

/** Asks for a reset link for `email` (202 expected) and returns the token of the new mail. */
export async function resetLinkToken(
  app: App,
  smtp: TestSmtpServer,
  email: string,
  options: Pick<AuthRequestOptions, 'remoteAddress'> = {},
): Promise<string> {
  const before = smtp.mails.filter((m) => m.to.includes(email.toLowerCase()) && RESET_MAIL.test(m.subject))
  const res = await forgotPassword(app, email, options)
  if (res.statusCode !== 202) throw new Error(`forgot ${email}: ${res.statusCode} ${res.body}`)
  return linkToken(await nthMail(smtp, email, RESET_MAIL, before.length))
}

// ---------------------------------------------------------------------------------------------
// API keys (issue 16): create one through the API, and send it.

export interface CreatedKey {
  id: string
  key: string
  prefix: string
  scopes: string[]
  expiresAt: string
}

/** POST /api/auth/api-keys as `user`; anything but 201 fails the calling test loudly. */
export async function createApiKey(
  user: Pick<SignedInUser, 'inject'>,
  scopes: string[],
  extra: { name?: string; expiresInDays?: number } = {},
): Promise<CreatedKey> {
  const payload = { name: extra.name ?? 'test key', scopes, ...extra }
  const res = await user.inject({ method: 'POST', url: '/api/auth/api-keys', payload })
  if (res.statusCode !== 201) throw new Error(`create API key: ${res.statusCode} ${res.body}`)
  return res.json<CreatedKey>()
}

/** app.inject with `key` as the Bearer token. */
export const injectWithKey = (app: App, key: string) => injectAs(app, key)
