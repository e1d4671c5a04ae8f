// `npm run bench`: load-tests the built service (production mode, every defence on) with autocannon
// against baselines and peers measured in the same run: bare node:http and Fastify, raw twins that
// run the service's SQL without its security stack, raw bcrypt, the Express recipe the service grew
// from, and better-auth. Fresh processes every round, rounds interleaved, medians of per-round
// ratios. `npm run bench -- --help` lists the options; README "Benchmark" says what the numbers mean.

import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import postgres from 'postgres'
import { buildIfStale } from '../scripts/build-if-stale.mjs'
import { startGenerator } from './lib/load.mjs'
import { parseOptions } from './lib/options.mjs'
import { ensurePeerDeps, PEERS_DIR } from './lib/peers.mjs'
import { cpuMicros, machineInfo, peakRss, postgresCpu, postgresCpuDelta } from './lib/proc.mjs'
import { startChild, stopChild } from './lib/processes.mjs'
import {
  GENERATOR_CPU_WARN,
  markdown,
  ratios,
  serviceEnvNote,
  summarize,
  writeResults,
} from './lib/report.mjs'
import { BCRYPT_CONNECTIONS } from './lib/scenarios.mjs'
import {
  BCRYPT_COST,
  createApiKey,
  login,
  logins,
  PASSWORD,
  register,
  seedComments,
  serviceEnv,
} from './lib/service.mjs'

let options
try {
  options = parseOptions()
} catch (error) {
  console.error(`bench: ${error.message}`)
  process.exit(2)
}
if (options.help) {
  console.log(options.help)
  process.exit(0)
}

const runStart = performance.now()
const started = new Date().toISOString()
const machine = machineInfo()
const scenarios = options.scenarios
const targetsNeeded = new Set(scenarios.map((s) => s.target))
// The raw twins query the bench user, whom only the service can make.
if (targetsNeeded.has('twin')) targetsNeeded.add('service')
console.log(
  `bench: ${scenarios.map((s) => s.id).join(', ')}; ${options.rounds} rounds × ${options.duration} s ` +
    `(+${options.warmup} s warm-up), ${options.connections} connections` +
    serviceEnvNote(options),
)

buildIfStale()
if (targetsNeeded.has('express') || targetsNeeded.has('express-keyobject')) ensurePeerDeps('express')
if (targetsNeeded.has('better-auth')) ensurePeerDeps('better-auth')

// --- Database: the given server, or an embedded one; the service runs as the least-privileged runtime role.
let embedded = null
let adminUrl = process.env.DATABASE_URL
if (!adminUrl) {
  const { startEmbeddedPostgres } = await import('../dist/lib/embedded-postgres.js')
  const { createLogger } = await import('../dist/lib/logger.js')
  embedded = await startEmbeddedPostgres({
    dataDir: '.data/postgres-bench',
    logger: createLogger({ LOG_LEVEL: 'warn' }),
    fast: true,
  })
  adminUrl = embedded.url
}
const database = embedded ? 'embedded PostgreSQL' : `DATABASE_URL (${new URL(adminUrl).host})`
const { splitRoles } = await import('../dist/lib/embedded-postgres.js')
const roles = await splitRoles(adminUrl)
let betterAuthUrl = null
if (targetsNeeded.has('better-auth')) betterAuthUrl = await ensureDatabase(adminUrl, 'bench_betterauth')

/** Creates the database when missing; its URL (same server and credentials). */
async function ensureDatabase(url, name) {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    const [found] = await sql`select 1 from pg_database where datname = ${name}`
    if (!found) await sql.unsafe(`create database ${name}`)
  } finally {
    await sql.end({ timeout: 5 })
  }
  const out = new URL(url)
  out.pathname = `/${name}`
  return out.toString()
}

// --- Targets: one fresh process per kind per round.
// --service-env last: it may override any of the bench's own settings (e.g. METRICS_PORT=0 to compare).
const env = { ...serviceEnv(roles, { logLevel: options.logLevel }), ...options.serviceEnv }
const betterAuthSecret = randomBytes(32).toString('base64')
const production = { NODE_ENV: 'production' }
const bench = {
  username: `bench${Date.now().toString(36)}`,
  userId: null,
  sessionId: null,
  password: PASSWORD,
}

const STARTERS = {
  service: () => startChild('service', ['dist/server.js'], { env }),
  'node-http': () => startChild('node-http', [join(PEERS_DIR, 'node-http.mjs')], { env: production }),
  fastify: () => startChild('fastify', [join(PEERS_DIR, 'fastify.mjs')], { env: production }),
  twin: () =>
    startChild('twin', [join(PEERS_DIR, 'raw-twin.mjs')], {
      env: {
        ...production,
        DATABASE_URL: roles.DATABASE_URL,
        BENCH_USER_ID: bench.userId,
        BENCH_SESSION_ID: bench.sessionId,
      },
    }),
  express: () => startChild('express', ['server.mjs'], { cwd: join(PEERS_DIR, 'express'), env: production }),
  'express-keyobject': () =>
    startChild('express-keyobject', ['server.mjs'], {
      cwd: join(PEERS_DIR, 'express'),
      env: { ...production, BENCH_JWT_KEY: 'keyobject' },
    }),
  'better-auth': () =>
    startChild('better-auth', ['server.mjs'], {
      cwd: join(PEERS_DIR, 'better-auth'),
      env: { ...production, BETTER_AUTH_DATABASE_URL: betterAuthUrl, BETTER_AUTH_SECRET: betterAuthSecret },
    }),
}

/** Round 1 makes the bench user and 50 comments; every round signs in afresh (tokens for /me and comments). */
async function prepareService(api) {
  if (!bench.userId) {
    bench.userId = (await register(api, bench.username)).id
    const { accessToken } = await login(api, bench.username)
    // The twin's /me checks this session as the service checks a token's (the payload is not verified here).
    bench.sessionId = JSON.parse(Buffer.from(accessToken.split('.')[1], 'base64url').toString()).sid
    await seedComments(api, accessToken, 50)
    bench.apiKey = await createApiKey(api, accessToken)
  }
  const { accessToken, cookies } = await login(api, bench.username)
  // What a browser sends to /api/users/me: the access and device cookies (the refresh cookie is Path=/api/auth).
  const cookie = Object.entries(cookies)
    .filter(([name]) => !name.endsWith('refresh_token'))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')
  return { accessToken, cookie, apiKey: bench.apiKey, username: bench.username, password: PASSWORD }
}

// --- Measuring one scenario.
const failures = []
const warnings = []

function bcryptRate() {
  const args = [
    join(PEERS_DIR, 'bcrypt-rate.mjs'),
    `--cost=${BCRYPT_COST}`,
    `--concurrency=${BCRYPT_CONNECTIONS}`,
    `--seconds=${options.duration}`,
    `--warmup=${options.warmup}`,
  ]
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, (error, stdout) => {
      if (error) return reject(error)
      const done = JSON.parse(stdout.trim().split('\n').at(-1))
      resolve({
        rps: done.rate,
        p50: done.p50,
        p99: done.p99,
        requests: done.count,
        cpuPerReq: done.cpuMicros / done.count,
        dbPerReq: null,
        peakRss: done.peakRss,
        generatorCpu: null,
        non2xx: 0,
        errors: 0,
      })
    })
  })
}

const problems = (r) => r.non2xx + r.errors

async function measure(scenario, ctx) {
  if (scenario.id === 'bcrypt') return bcryptRate()
  const server = ctx.targets[scenario.target]
  const generator = await startGenerator()
  try {
    const warm = []
    if (options.warmup > 0) {
      // The refresh warm-up spends its own sessions: a request cut off when it ends leaves its
      // connection's cookie consumed, which the measured round must never present.
      const warmCtx = scenario.id === 'refresh' ? { ...ctx, jars: ctx.warmJars } : ctx
      const answer = await generator.run([
        { ...scenario.job(warmCtx), duration: options.warmup, id: 'warm-up' },
      ])
      warm.push(...answer.results)
    }
    const jobs = [{ ...scenario.job(ctx), duration: options.duration, id: scenario.id }]
    if (scenario.probe) jobs.push({ ...scenario.probe(ctx), duration: options.duration })
    const cpuBefore = cpuMicros(server.pid)
    const pgBefore = postgresCpu()
    const answer = await generator.run(jobs)
    const cpuAfter = cpuMicros(server.pid)
    const pgAfter = postgresCpu()
    const [main, probe] = answer.results
    const requests = Math.max(1, main.requests)
    return {
      target: scenario.target,
      rps: main.rps,
      p50: main.p50,
      p99: main.p99,
      requests: main.requests,
      cpuPerReq: (cpuAfter - cpuBefore) / requests,
      dbPerReq: postgresCpuDelta(pgBefore, pgAfter) / requests,
      peakRss: peakRss(server.pid),
      generatorCpu: answer.cpuMicros / (answer.wallMs * 1000),
      non2xx: main.non2xx,
      errors: main.errors,
      timeouts: main.timeouts,
      statusCodes: main.statusCodes,
      warmup: warm.map(({ non2xx, errors, statusCodes }) => ({ non2xx, errors, statusCodes })),
      probe: probe ?? null,
    }
  } finally {
    await generator.stop()
  }
}

// --- Rounds.
const rounds = []
/** Per target kind, per round: peak RSS right after the process announced itself. */
const bootRss = {}
const running = new Map()
async function stopAll() {
  await Promise.all([...running.values()].map(stopChild))
  running.clear()
}
let exitCode = 0
try {
  for (let round = 1; round <= options.rounds; round++) {
    const ctx = { targets: {}, connections: options.connections }
    const records = {}
    rounds.push(records)
    // The service first: the twins need the bench user it makes.
    for (const kind of ['service', ...[...targetsNeeded].filter((k) => k !== 'service' && k !== 'bcrypt')]) {
      if (!targetsNeeded.has(kind)) continue
      const started = await STARTERS[kind]()
      running.set(kind, started)
      ctx.targets[kind] = { url: started.info.url, pid: started.pid, info: started.info }
      // Resident memory once ready, before any load: tells boot size from growth under load.
      bootRss[kind] ??= []
      bootRss[kind].push(peakRss(started.pid))
      if (kind === 'service') ctx.auth = await prepareService(started.info.url)
    }
    for (const scenario of scenarios) {
      if (scenario.id === 'refresh') {
        // One sign-in per connection (bcrypt-bound, 8 at a time), each its own session and cookie chain.
        const api = ctx.targets.service.url
        const jarsOf = async (n) => (await logins(api, bench.username, n)).map((s) => s.cookies)
        ctx.jars = await jarsOf(options.connections)
        ctx.warmJars = options.warmup > 0 ? await jarsOf(Math.min(10, options.connections)) : []
      }
      const record = await measure(scenario, ctx)
      records[scenario.id] = record
      const bad = problems(record) + (record.probe ? problems(record.probe) : 0)
      const warmBad = (record.warmup ?? []).reduce((n, w) => n + problems(w), 0)
      if (bad + warmBad > 0) {
        const codes = JSON.stringify({ measured: record.statusCodes, probe: record.probe?.statusCodes })
        failures.push(
          `${scenario.id} (round ${round}): ${record.non2xx} non-2xx, ${record.errors} errors` +
            `${record.probe ? `, probe ${record.probe.non2xx} non-2xx/${record.probe.errors} errors` : ''}` +
            `${warmBad ? `, warm-up ${warmBad}` : ''} ${codes}`,
        )
      }
      if (record.generatorCpu !== null && record.generatorCpu > GENERATOR_CPU_WARN) {
        warnings.push(
          `${scenario.id} (round ${round}): the load generator used ${Math.round(record.generatorCpu * 100)} % of a core: ` +
            'its req/s may be the generator’s limit; CPU per request still speaks for the server.',
        )
      }
      const gen = record.generatorCpu === null ? '' : `, generator ${Math.round(record.generatorCpu * 100)} %`
      const probe = record.probe ? `, /health/live beside it p99 ${record.probe.p99} ms` : ''
      console.log(
        `[round ${round}/${options.rounds}] ${scenario.id}: ${Math.round(record.rps)} req/s, ` +
          `p50 ${record.p50?.toFixed?.(1)} ms, p99 ${record.p99?.toFixed?.(1)} ms, ` +
          `server ${Math.round(record.cpuPerReq)} µs/req` +
          `${record.dbPerReq === null ? '' : `, PostgreSQL ${Math.round(record.dbPerReq)} µs/req`}` +
          `${gen}${probe}${bad ? `, ${record.non2xx} non-2xx, ${record.errors} errors` : ''}`,
      )
    }
    await stopAll()
  }
} catch (error) {
  console.error(`bench: ${error.stack ?? error}`)
  failures.push(`aborted: ${error.message}`)
  exitCode = 1
} finally {
  await stopAll()
  await embedded?.stop()
}

// --- Report.
const seconds = (performance.now() - runStart) / 1000
const summary = summarize(scenarios, rounds)
const ratioRows = ratios(rounds)
const md = markdown({ options, machine, summary, ratioRows, started, seconds, warnings, database, bootRss })
writeResults(
  'bench/results',
  {
    started,
    seconds,
    machine,
    options,
    database,
    rounds,
    bootRss,
    summary,
    ratios: ratioRows,
    failures,
    warnings,
  },
  md,
)
console.log(`\n${md}`)
console.log('Written: bench/results/latest.json, bench/results/latest.md')
if (failures.length > 0) {
  console.error(`bench: FAILED (unexpected non-2xx or errors):\n  ${failures.join('\n  ')}`)
  exitCode = 1
}
process.exit(exitCode)
