import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import postgres from 'postgres'
import t, { type Test } from 'tap'
import { buildApp } from '../app.js'
import { loadConfig } from '../lib/config.js'
import { createLogger } from '../lib/logger.js'
import type { Config } from '../schemas/env.js'

/** The server every test file talks to: the machine's PostgreSQL or the embedded one (npm test). */
export const ADMIN_URL = process.env.DATABASE_URL ?? ''
if (!ADMIN_URL) throw new Error('DATABASE_URL is not set: run the tests with `npm test`')

export function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL)
  url.pathname = `/${name}`
  return url.toString()
}

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
 * Every request from app.inject comes from 127.0.0.1, so the production limits would throttle
 * ordinary tests; tests of the limits set their own values.
 */
const GENEROUS_LIMITS = {
  RATE_LIMIT_MAX: '100000',
  LOGIN_RATE_LIMIT_MAX: '10000',
  LOGIN_ACCOUNT_MAX_FAILURES: '10000',
  REGISTER_RATE_LIMIT_MAX: '10000',
  REFRESH_RATE_LIMIT_MAX: '100000',
}

export async function testConfig(env: Record<string, string> = {}): Promise<Config> {
  return loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: await testDatabaseUrl(),
    ...GENEROUS_LIMITS,
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
  setup?: (app: Awaited<ReturnType<typeof buildApp>>) => void | Promise<void>
}

/** Builds the real app exactly as server.ts does, closed when the test ends. */
export async function build(test: Test, options: BuildTestOptions = {}) {
  const config = await testConfig(options.env)
  const logger = options.logStream ? createLogger({ LOG_LEVEL: 'info' }, options.logStream) : undefined
  const app = await buildApp(config, logger ? { logger } : {})
  test.teardown(() => app.close())
  await options.setup?.(app)
  await app.ready()
  return app
}

export const TEST_PASSWORD = 'Passw0rdX'
type TestApp = Awaited<ReturnType<typeof build>>

/** Registers a user through the API; anything but 201 fails the calling test loudly. */
export async function register(app: TestApp, username: string, password = TEST_PASSWORD) {
  const res = await app.inject({
    method: 'POST',
    url: '/api/auth/register',
    payload: { username, email: `${username}@example.com`, password },
  })
  if (res.statusCode !== 201) throw new Error(`register ${username}: ${res.statusCode} ${res.body}`)
  return res.json().user as { id: string; username: string; email: string; role: string }
}

/** Logs in through the API: the response, its access token and the cookies it set. */
export async function login(app: TestApp, username: string, password = TEST_PASSWORD) {
  const res = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password } })
  if (res.statusCode !== 200) throw new Error(`login ${username}: ${res.statusCode} ${res.body}`)
  const cookies = Object.fromEntries(res.cookies.map((c) => [c.name, c.value])) as Record<string, string>
  return { res, accessToken: res.json().accessToken as string, cookies }
}
