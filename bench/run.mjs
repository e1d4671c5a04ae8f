// `npm run bench`: load-tests the built service on 127.0.0.1 with autocannon against a bare
// node:http baseline measured in the same run. Reports medians of several runs: requests per
// second, p99 latency, and server CPU time per request (steadier than req/s on a shared machine).

import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import autocannon from 'autocannon'
import { buildIfStale } from '../scripts/build-if-stale.mjs'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const DURATION = Number(process.env.BENCH_SECONDS ?? 5)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)
const TICK_MS = 1000 / 100 // USER_HZ
// Meets the password policy (15+ characters, not on the blocklist).
const PASSWORD = 'Bench-Lantern-Orbit-7'

buildIfStale()
let embedded = null
let databaseUrl = process.env.DATABASE_URL
if (!databaseUrl) {
  const { startEmbeddedPostgres } = await import('../dist/lib/embedded-postgres.js')
  const { createLogger } = await import('../dist/lib/logger.js')
  embedded = await startEmbeddedPostgres({
    dataDir: '.data/postgres-bench',
    logger: createLogger({ LOG_LEVEL: 'warn' }),
    fast: true,
  })
  databaseUrl = embedded.url
}
// The service runs as the least-privileged runtime role, as in production (README, Database security).
const { splitRoles } = await import('../dist/lib/embedded-postgres.js')
const roles = splitRoles ? await splitRoles(databaseUrl) : { DATABASE_URL: databaseUrl }

/** Starts a child that prints a JSON line with `url` when listening. */
function startChild(args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let buffer = ''
    const onData = (chunk) => {
      buffer += chunk
      for (const line of buffer.split('\n')) {
        if (!line.includes('"url"')) continue
        try {
          const { url } = JSON.parse(line)
          if (url) {
            child.stdout.off('data', onData)
            child.stdout.resume() // keep draining logs
            return resolve({ child, url })
          }
        } catch {}
      }
    }
    child.stdout.on('data', onData)
    child.once('exit', (code) => reject(new Error(`child exited with ${code}`)))
  })
}

const cpuMs = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function measure(pid, options) {
  const results = []
  for (let i = 0; i < RUNS; i++) {
    const before = cpuMs(pid)
    const r = await autocannon({ connections: CONNECTIONS, duration: DURATION, ...options })
    const cpu = cpuMs(pid) - before
    if (r.non2xx > 0 || r.errors > 0)
      throw new Error(`${options.url}: ${r.non2xx} non-2xx, ${r.errors} errors`)
    results.push({ rps: r.requests.average, p99: r.latency.p99, cpuUs: (cpu * 1000) / r.requests.total })
  }
  return {
    rps: median(results.map((r) => r.rps)),
    p99: median(results.map((r) => r.p99)),
    cpuUs: median(results.map((r) => r.cpuUs)),
  }
}

const baseline = await startChild(
  [
    '-e',
    `require('node:http').createServer((q, s) => { s.setHeader('content-type', 'application/json'); s.end('{"status":"ok"}') }).listen(0, '127.0.0.1', function () { console.log(JSON.stringify({ url: 'http://127.0.0.1:' + this.address().port })) })`,
  ],
  {},
)
const service = await startChild(['dist/server.js'], {
  NODE_ENV: 'production',
  PORT: '0',
  LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
  ...roles,
  JWT_SECRET: randomBytes(32).toString('base64'),
  DATA_ENCRYPTION_KEYS: `b1:${Buffer.alloc(32, 1).toString('base64')}`,
  DATA_INDEX_KEY: Buffer.alloc(32, 2).toString('base64'),
  PASSWORD_PEPPER: Buffer.alloc(32, 3).toString('base64'),
  BCRYPT_COST: '10',
  RATE_LIMIT_MAX: '1000000',
  REGISTER_RATE_LIMIT_MAX: '10000',
  LOGIN_RATE_LIMIT_MAX: '10000',
  LOGIN_ACCOUNT_MAX_FAILURES: '10000',
  UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
})

// A user with a token, and 50 comments to list.
const api = service.url
const json = { 'content-type': 'application/json' }
const name = `bench${Date.now()}`
await fetch(`${api}/api/auth/register`, {
  method: 'POST',
  headers: json,
  body: JSON.stringify({ username: name, email: `${name}@example.com`, password: PASSWORD }),
})
const login = await (
  await fetch(`${api}/api/auth/login`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ username: name, password: PASSWORD }),
  })
).json()
const auth = { authorization: `Bearer ${login.accessToken}` }
for (let i = 0; i < 50; i++) {
  await fetch(`${api}/api/comments`, {
    method: 'POST',
    headers: { ...json, ...auth },
    body: JSON.stringify({ body: `comment ${i} <b>x</b>` }),
  })
}

const scenarios = [
  ['baseline node:http', baseline, { url: baseline.url }],
  ['GET /health/live', service, { url: `${api}/health/live` }],
  ['GET /api/users/me (JWT + session check)', service, { url: `${api}/api/users/me`, headers: auth }],
  ['GET /api/comments?limit=20', service, { url: `${api}/api/comments?limit=20` }],
  // bcrypt-bound (cost 10): fewer connections, as many as the thread pool can hash at once.
  [
    'POST /api/auth/register (bcrypt 10, -c 8)',
    service,
    {
      url: `${api}/api/auth/register`,
      method: 'POST',
      connections: 8,
      headers: json,
      requests: [
        {
          setupRequest: (req) => {
            const user = `b${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`
            return {
              ...req,
              body: JSON.stringify({
                username: user,
                email: `${user}@example.com`,
                password: PASSWORD,
              }),
            }
          },
        },
      ],
    },
  ],
  [
    'POST /api/auth/login (bcrypt 10, -c 8)',
    service,
    {
      url: `${api}/api/auth/login`,
      method: 'POST',
      connections: 8,
      headers: json,
      body: JSON.stringify({ username: name, password: PASSWORD }),
    },
  ],
]
const rows = []
for (const [label, target, options] of scenarios)
  rows.push({ label, ...(await measure(target.child.pid, options)) })
const base = rows[0]
console.log(
  `\n${RUNS} runs x ${DURATION}s, ${CONNECTIONS} connections, medians; LOG_LEVEL=${process.env.BENCH_LOG_LEVEL ?? 'info'}`,
)
console.log('| scenario | req/s | p99 ms | server CPU µs/req | CPU vs baseline |')
console.log('|---|---|---|---|---|')
for (const r of rows) {
  console.log(
    `| ${r.label} | ${Math.round(r.rps)} | ${r.p99} | ${r.cpuUs.toFixed(0)} | ${(r.cpuUs / base.cpuUs).toFixed(1)}x |`,
  )
}
baseline.child.kill()
service.child.kill('SIGTERM')
await new Promise((r) => service.child.once('exit', r))
await embedded?.stop()
process.exit(0)
