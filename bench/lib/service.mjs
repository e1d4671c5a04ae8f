// The service under test: its environment (production, every defence on, limits raised), and the
// bench user's sign-ins, tokens and cookies.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'

// Meets the password policy (15+ characters, not on the blocklist).
export const PASSWORD = 'Bench-Lantern-Orbit-7'
export const BCRYPT_COST = 10

/** The image's NODE_OPTIONS (Dockerfile ENV): the service runs with the V8 settings it ships with. */
function imageNodeOptions() {
  const line = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8').match(
    /NODE_OPTIONS="([^"]*)"/,
  )
  return line ? line[1] : ''
}

/** One secret per run, so tokens and keys agree across the fresh processes of every round. */
export function serviceEnv(roles, { logLevel }) {
  return {
    NODE_ENV: 'production',
    NODE_OPTIONS: imageNodeOptions(),
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: logLevel,
    ...roles,
    JWT_SECRET: randomBytes(32).toString('base64'),
    DATA_ENCRYPTION_KEYS: `b1:${randomBytes(32).toString('base64')}`,
    DATA_INDEX_KEY: randomBytes(32).toString('base64'),
    PASSWORD_PEPPER: randomBytes(32).toString('base64'),
    BCRYPT_COST: String(BCRYPT_COST),
    // Raised so a load test is not refused, never removed: every request is still counted.
    RATE_LIMIT_MAX: '1000000',
    REGISTER_RATE_LIMIT_MAX: '10000',
    LOGIN_RATE_LIMIT_MAX: '10000',
    LOGIN_ACCOUNT_MAX_FAILURES: '10000',
    LOGIN_DEVICE_MAX_FAILURES: '10000',
    REFRESH_RATE_LIMIT_MAX: '100000',
    API_KEY_RATE_LIMIT_MAX: '1000000',
    // Production needs SMTP_URL or MAIL_DISABLED=true. Off here: every benchmark login comes without
    // a device cookie, so with mail on each one would queue a new-sign-in notice (an outbox row and an
    // audit row in its transaction) and a worker would send thousands of them beside the load. The
    // bench measures the request path; the outbox is tested in test/services/outbox*.test.ts.
    MAIL_DISABLED: 'true',
    // Load shedding stays on with its default threshold (1 s of event-loop delay).
  }
}

const json = { 'content-type': 'application/json' }

/**
 * A setup request. 503 is retried: a fresh process on a busy machine can stall at boot, and load
 * shedding (under-pressure, on as in production) then answers 503 until its next sample.
 */
async function call(url, init, expected) {
  for (let attempt = 1; ; attempt++) {
    const response = await fetch(url, init)
    if (response.status === 503 && attempt < 20) {
      await response.arrayBuffer()
      await new Promise((resolve) => setTimeout(resolve, 500))
      continue
    }
    if (response.status !== expected) {
      throw new Error(`${init.method ?? 'GET'} ${url}: ${response.status} ${await response.text()}`)
    }
    return response
  }
}

/** name=value pairs of a response's Set-Cookie lines, except cleared ones. */
export function cookiesOf(response) {
  const jar = {}
  for (const line of response.headers.getSetCookie()) {
    const pair = line.split(';')[0] ?? ''
    const at = pair.indexOf('=')
    if (at > 0 && at < pair.length - 1) jar[pair.slice(0, at)] = pair.slice(at + 1)
  }
  return jar
}

export async function register(api, username) {
  const response = await call(
    `${api}/api/auth/register`,
    {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ username, email: `${username}@example.com`, password: PASSWORD }),
    },
    201,
  )
  return (await response.json()).user
}

/** Signs in: the access token and the cookies the response set (access, refresh, device). */
export async function login(api, username) {
  const response = await call(
    `${api}/api/auth/login`,
    { method: 'POST', headers: json, body: JSON.stringify({ username, password: PASSWORD }) },
    200,
  )
  const body = await response.json()
  return { accessToken: body.accessToken, cookies: cookiesOf(response) }
}

/** `count` sign-ins, `inFlight` at a time (bcrypt-bound: more would only queue). */
export async function logins(api, username, count, inFlight = 8) {
  const out = []
  let next = 0
  const worker = async () => {
    while (next < count) {
      next++
      out.push(await login(api, username))
    }
  }
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker))
  return out
}

/** An API key of the bench user that may read profiles (made once, from a fresh sign-in: recent). */
export async function createApiKey(api, accessToken) {
  const response = await call(
    `${api}/api/auth/api-keys`,
    {
      method: 'POST',
      headers: { ...json, authorization: `Bearer ${accessToken}` },
      body: JSON.stringify({ name: 'bench', scopes: ['profile:read'], expiresInDays: 1 }),
    },
    201,
  )
  return (await response.json()).key
}

export async function seedComments(api, accessToken, count) {
  for (let i = 0; i < count; i++) {
    await call(
      `${api}/api/comments`,
      {
        method: 'POST',
        headers: { ...json, authorization: `Bearer ${accessToken}` },
        body: JSON.stringify({ body: `seed comment ${i} <b>x</b>` }),
      },
      201,
    )
  }
}
