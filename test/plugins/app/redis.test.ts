import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { type AddressInfo, connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { App } from '../../../app.js'
import {
  attemptLogin,
  build,
  expectProblem,
  logCapture,
  register,
  skipUnlessCI,
  uniqueName,
} from '../../helper.js'

/**
 * Rate limits across replicas: counters in Redis are shared by every instance; when Redis goes
 * away the global limit fails open (and says so in the log) while login fails closed (503).
 */

const SHARED_REDIS_PORT = 6379
const SHARED_REDIS_URL = `redis://127.0.0.1:${SHARED_REDIS_PORT}`
const REDIS_PASSWORD = 's3cret'
const RATE_LIMITED = 'urn:bulwark:problem:rate-limited'

let seq = 0
/** A key prefix of this test alone: parallel test files never share counters. */
const uniquePrefix = () => `bulwark-test:${process.pid}:${Date.now()}:${++seq}:`

/** True when a password-less Redis answers PING on the port (a fresh machine may have none). */
function redisAnswers(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' })
    let text = ''
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk) => {
      text += chunk.toString()
      if (text.includes('\r\n')) done(text.startsWith('+PONG'))
    })
  })
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => done(true))
  })
}

const hasRedisServer = () => !spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).error

async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null

/** Starts a throw-away redis-server (no persistence, with a password), killed when the test ends. */
async function startRedis(t: Test, port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--requirepass',
      REDIS_PASSWORD,
    ],
    { cwd: tmpdir(), stdio: 'ignore' },
  )
  t.teardown(async () => {
    if (running(child)) {
      child.kill('SIGKILL')
      await once(child, 'exit')
    }
  })
  const deadline = Date.now() + 5000
  while (Date.now() < deadline) {
    if (!running(child)) throw new Error(`redis-server on port ${port} exited at start`)
    if (await tcpOpen(port)) return child
    await sleep(50)
  }
  throw new Error(`redis-server on port ${port} did not start within 5 s`)
}

async function stopRedis(child: ChildProcess): Promise<void> {
  if (!running(child)) return
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
}

/** The app connects to Redis in the background; wait until its connection is ready. */
async function redisReady(app: App): Promise<void> {
  const redis = app.redis
  if (!redis) throw new Error('the app has no Redis connection')
  const deadline = Date.now() + 5000
  while (redis.status !== 'ready') {
    if (Date.now() > deadline) throw new Error(`Redis connection not ready: ${redis.status}`)
    await sleep(20)
  }
}

const legacyHeaders = (headers: Record<string, unknown>) =>
  Object.keys(headers).filter((h) => h.toLowerCase().startsWith('x-ratelimit'))

// Checked once, up front: a fresh machine may have neither, and then these tests are skipped.
const noSharedRedis = (await redisAnswers(SHARED_REDIS_PORT))
  ? false
  : `no password-less Redis answers at ${SHARED_REDIS_URL}; start one to run this test`
const noRedisServer = hasRedisServer() ? false : 'redis-server is not installed; install it to run this test'

t.test(
  'two instances sharing one Redis share one global limit',
  { skip: skipUnlessCI(noSharedRedis) },
  async (t) => {
    t.setTimeout(30000)
    const prefix = uniquePrefix()
    const env = {
      REDIS_URL: SHARED_REDIS_URL,
      RATE_LIMIT_KEY_PREFIX: prefix,
      RATE_LIMIT_MAX: '4',
      RATE_LIMIT_WINDOW_MS: '60000',
    }
    const first = await build(t, { env })
    const second = await build(t, { env })
    await redisReady(first)
    await redisReady(second)
    const apps = [first, second] as const

    for (let i = 0; i < 4; i++) {
      const app = i % 2 === 0 ? first : second
      const res = await app.inject('/api/comments')
      t.equal(res.statusCode, 200, `request ${i + 1} (instance ${(i % 2) + 1}) is served`)
      t.equal(res.headers['ratelimit-limit'], '4', 'RateLimit-Limit')
      // Separate in-memory counters would say 3, 3, 2, 2: one shared counter says 3, 2, 1, 0.
      t.equal(res.headers['ratelimit-remaining'], String(3 - i), 'the remaining budget is shared')
      t.same(legacyHeaders(res.headers), [], 'no legacy X-RateLimit-* headers')
    }

    for (const [i, app] of apps.entries()) {
      const res = await app.inject('/api/comments')
      const body = expectProblem(t, res, 429, RATE_LIMITED, `over the shared limit on instance ${i + 1}`)
      t.equal(body.title, 'Too Many Requests')
      t.equal(res.headers['ratelimit-limit'], '4')
      t.equal(res.headers['ratelimit-remaining'], '0')
      t.match(res.headers['retry-after'], /^\d+$/, 'Retry-After in seconds')
      t.ok(Number(res.headers['retry-after']) > 0 && Number(res.headers['retry-after']) <= 60)
      t.same(legacyHeaders(res.headers), [], 'no legacy X-RateLimit-* headers on the 429 either')
    }

    const other = await second.inject({ url: '/api/comments', remoteAddress: '192.0.2.44' })
    t.equal(other.statusCode, 200, 'another client still has its own budget')
    t.equal(other.headers['ratelimit-remaining'], '3')

    const keys = await first.redis?.keys(`${prefix}*`)
    t.ok(keys && keys.length > 0, 'the counters live in Redis under the configured prefix')
    if (keys?.length) await first.redis?.del(...keys)
  },
)

t.test(
  'two instances sharing one Redis share the per-address login limit',
  { skip: skipUnlessCI(noSharedRedis) },
  async (t) => {
    t.setTimeout(30000)
    const prefix = uniquePrefix()
    const env = {
      REDIS_URL: SHARED_REDIS_URL,
      RATE_LIMIT_KEY_PREFIX: prefix,
      RATE_LIMIT_MAX: '1000',
      LOGIN_RATE_LIMIT_MAX: '3',
      LOGIN_RATE_LIMIT_WINDOW_MS: '60000',
      BCRYPT_COST: '4',
    }
    const first = await build(t, { env })
    const second = await build(t, { env })
    await redisReady(first)
    await redisReady(second)
    const username = uniqueName('shared')
    await register(first, username)

    const apps = [first, second, first] as const
    for (const [i, app] of apps.entries()) {
      const res = await attemptLogin(app, username)
      t.equal(res.statusCode, 200, `login ${i + 1} of 3 is allowed`)
    }
    const fourth = await attemptLogin(second, username)
    expectProblem(t, fourth, 429, RATE_LIMITED, 'the 4th login across both instances is refused')
    t.equal(fourth.headers['ratelimit-limit'], '3')
    t.equal(fourth.headers['ratelimit-remaining'], '0')
    t.match(fourth.headers['retry-after'], /^\d+$/)
    t.same(legacyHeaders(fourth.headers), [])

    const keys = await first.redis?.keys(`${prefix}*`)
    if (keys?.length) await first.redis?.del(...keys)
  },
)

t.test(
  'Redis stopped mid-test: global limit fails open, login fails closed, then recovers',
  { skip: skipUnlessCI(noRedisServer) },
  async (t) => {
    t.setTimeout(60000)
    const port = await freePort()
    let server = await startRedis(t, port)
    const log = logCapture()
    const app = await build(t, {
      logStream: log.stream,
      env: {
        REDIS_URL: `redis://:${REDIS_PASSWORD}@127.0.0.1:${port}`,
        RATE_LIMIT_KEY_PREFIX: uniquePrefix(),
        RATE_LIMIT_MAX: '3',
        LOGIN_RATE_LIMIT_MAX: '100',
        BCRYPT_COST: '4',
      },
    })
    await redisReady(app)
    const username = uniqueName('outage')
    await register(app, username)

    await t.test('while Redis is up, requests are served and limited, and login works', async (t) => {
      const before = await app.inject('/api/comments')
      t.equal(before.statusCode, 200, 'served while Redis is up')
      t.equal(before.headers['ratelimit-limit'], '3', 'limited while Redis is up')
      t.equal(before.headers['ratelimit-remaining'], '2')
      t.equal((await attemptLogin(app, username)).statusCode, 200, 'login works while Redis is up')
    })

    await t.test('while Redis is away, the global limit fails open and login fails closed', async (t) => {
      await stopRedis(server)
      // ioredis sees the socket close, then its first reconnect (after 200 ms) is refused and logged.
      const deadline = Date.now() + 5000
      while (!log.lines.some((l) => l.event === 'redis.unavailable') && Date.now() < deadline) await sleep(50)
      await sleep(300)
      t.not(app.redis?.status, 'ready', 'the client noticed that Redis is gone')

      for (let i = 1; i <= 5; i++) {
        const res = await app.inject('/api/comments')
        t.equal(res.statusCode, 200, `anonymous request ${i} is served (global limit fails open, max 3)`)
      }

      const refused = await attemptLogin(app, username)
      const body = expectProblem(t, refused, 503, undefined, 'login fails closed while Redis is away')
      t.equal(body.title, 'Service Unavailable')
      t.match(refused.headers['retry-after'], /^\d+$/, 'Retry-After tells the client when to come back')
      t.notMatch(refused.body, /redis|ECONNREFUSED|127\.0\.0\.1|s3cret/i, 'no internals in the answer')

      const live = await app.inject('/health/live')
      t.equal(live.statusCode, 200, 'liveness is unaffected')
    })

    await t.test('the outage is logged at warn, without the Redis password', async (t) => {
      const warnings = log.lines.filter((l) => l.event === 'redis.unavailable')
      t.ok(warnings.length >= 1, 'the outage is logged')
      t.match(warnings, [{ level: 'warn' }], 'at level warn')
      const warningLines = log.raw.filter((l) => l.includes('redis.unavailable'))
      t.ok(warningLines.length >= 1)
      for (const line of warningLines) t.notMatch(line, REDIS_PASSWORD, 'no Redis password in the warning')
    })

    await t.test('once Redis is back, login works and the global limit counts again', async (t) => {
      server = await startRedis(t, port)
      let status = 0
      const recoverBy = Date.now() + 10000
      while (Date.now() < recoverBy) {
        status = (await attemptLogin(app, username)).statusCode
        if (status !== 503) break
        await sleep(250)
      }
      t.equal(status, 200, 'login works again once Redis is back')
      const after = await app.inject('/api/comments')
      t.equal(after.statusCode, 200)
      t.ok(after.headers['ratelimit-limit'] === '3', 'the global limit is counted again')
      t.match(
        log.lines.filter((l) => l.event === 'redis.ready'),
        [{ level: 'info' }],
        'the recovery is logged',
      )
    })

    await t.test('the Redis password never appears in any log line', async (t) => {
      t.equal(
        log.raw.filter((l) => l.includes(REDIS_PASSWORD)).length,
        0,
        'the Redis password never appears in any log line',
      )
      t.ok(log.raw.length > 0, 'the log was captured')
    })
    await stopRedis(server)
  },
)
