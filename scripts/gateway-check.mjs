// `npm run gateway:check`: compose.yaml's topology rehearsed on this machine, without a container
// engine. It validates compose.yaml (docker-compose config, then the properties the deployment relies
// on), then runs two production replicas of the built service on one PostgreSQL and one Redis behind
// nginx with deploy/nginx/nginx.conf, and proves through the gateway:
//   a. a login answered by one replica is honoured by the other, which sees the real client address;
//   b. refresh tokens rotate across replicas, and reuse of a consumed one revokes the session on both;
//   c. the login and global rate limits are shared (Redis) and count the real client, not the gateway;
//   d. the gateway's request id reaches the response and the log of the replica that served it;
//   e. a rolling restart (SIGTERM, drain, restart, one replica at a time) under load loses no request;
//   f. every mail the drill caused (new-sign-in notices) is sent once, by either replica's outbox
//      worker, to an SMTP server this check runs (compose.yaml's smtp_url secret points there).
// Clients, nginx and the replicas use distinct loopback addresses (nginx reaches the replicas from
// 127.0.0.3 with `proxy_bind`; TRUST_PROXY=127.0.0.3/32), so "the real client" is observable.
// Everything it starts or creates (processes, nginx, database, Redis keys) is removed at the end, also
// on failure. A step that cannot run here fails the check and says why. Exit code 0 only if all passed.
//
// GATEWAY_CHECK_DATABASE_URL (default: CI_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test)
// is an administrator connection: the check creates its own database there and drops it.
// GATEWAY_CHECK_REDIS_URL (default redis://127.0.0.1:6379): keys under a prefix unique to the run.
// The load of the rolling restart mixes GET /api/users/me and POST /api/comments: nginx never retries
// a POST once sent, so a lost POST shows. GATEWAY_CHECK_KEEP_LOGS=1 keeps
// the logs (replicas, nginx access and error logs) of a passing run too; a failing run always does.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { buildIfStale } from './build-if-stale.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
process.chdir(ROOT)
const started = Date.now()

const ADMIN_URL =
  process.env.GATEWAY_CHECK_DATABASE_URL ??
  process.env.CI_DATABASE_URL ??
  'postgres://postgres@127.0.0.1:5432/test'
const REDIS_URL = process.env.GATEWAY_CHECK_REDIS_URL ?? 'redis://127.0.0.1:6379'

// Loopback addresses: who is who, as the replicas and nginx's access log see it.
const GATEWAY_SOURCE = '127.0.0.3' // nginx -> replicas (proxy_bind); the replicas' TRUST_PROXY
const CLIENT = '127.0.0.2' // a, b, d
const LOGIN_LIMITED = '127.0.0.4'
const LOGIN_OTHER = '127.0.0.5'
const GLOBAL_LIMITED = '127.0.0.6'
const GLOBAL_OTHER = '127.0.0.7'
const PROBE = '127.0.0.9' // steering the round robin with /health/live (never rate limited)
const LOAD = '127.0.0.10' // autocannon
const FORGED_FOR = '203.0.113.7' // documentation address, only ever written into a header

const LOGIN_LIMIT = 4
const GLOBAL_LIMIT = 30
const DRAIN_DELAY_MS = 2000 // SHUTDOWN_DELAY_MS in the drill (compose.yaml's is longer)
const LOAD_CONNECTIONS = Number(process.env.GATEWAY_CHECK_CONNECTIONS ?? 50)
const WARM_UP_MS = 6000 // load before the first SIGTERM (compose.yaml's rollout waits 6 s too)
// The load of the rolling restart, in turn on every connection: a read the gateway may retry and a
// write it never retries once sent.
const LOAD_PATHS = ['/api/users/me', '/api/comments']
// Meets the password policy (15+ characters, not on the blocklist, no username in it).
const PASSWORD = 'Gateway-Check-Rolling-9'

const run = randomBytes(4).toString('hex')
const work = mkdtempSync(join(tmpdir(), 'bulwark-gateway-'))
chmodSync(work, 0o755) // nginx workers (nobody) use temp directories inside it
const results = []
const notes = []

function report(ok, label, detail = '') {
  results.push({ ok, label })
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${label}${detail ? ` — ${detail}` : ''}`)
  return ok
}
const check = (label, ok, detail = '') => report(Boolean(ok), label, detail)
class CannotRun extends Error {}

// ---------------------------------------------------------------------------------------------
// Machine prerequisites: Debian packages installed when missing.

function have(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0
}

function aptInstall(pkg, command) {
  if (have(command)) return
  if (process.getuid?.() !== 0) throw new CannotRun(`${command} is missing and installing ${pkg} needs root`)
  console.log(`== installing ${pkg} from Debian (apt-get, --no-install-recommends)`)
  // RUNLEVEL=1: the package's maintainer scripts start no daemon. The lock timeout waits for another
  // apt-get on the machine instead of failing at once.
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', RUNLEVEL: '1' }
  const install = () =>
    spawnSync(
      'apt-get',
      ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '-q', '--no-install-recommends', pkg],
      { env, encoding: 'utf8' },
    )
  let result = install()
  if (result.status !== 0) {
    spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update', '-q'], { env, stdio: 'ignore' })
    result = install()
  }
  if (result.status !== 0 || !have(command)) {
    const why = `${result.stderr ?? ''}`.trim().split('\n').slice(-2).join(' ')
    throw new CannotRun(`apt-get install ${pkg} failed: ${why}`)
  }
}

// ---------------------------------------------------------------------------------------------
// compose.yaml: validated by docker-compose, then the properties the deployment depends on.

const durationMs = (text) => {
  let ms = 0
  for (const [, n, unit] of String(text).matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    ms += Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]
  }
  return ms
}

// The settings compose.yaml asks the operator for (it refuses to start without them).
const COMPOSE_ENV = {
  ...process.env,
  PUBLIC_APP_URL: 'https://app.example.test',
  MAIL_FROM: 'Bulwark gateway check <bulwark@example.test>',
}

function loadCompose() {
  const validated = spawnSync('docker-compose', ['-f', 'compose.yaml', 'config', '-q'], {
    encoding: 'utf8',
    env: COMPOSE_ENV,
  })
  const version = spawnSync('docker-compose', ['version', '--short'], { encoding: 'utf8' }).stdout.trim()
  check(
    `compose: docker-compose ${version} accepts compose.yaml (config -q)`,
    validated.status === 0,
    validated.stderr.trim(),
  )
  if (validated.status !== 0) throw new CannotRun('compose.yaml is invalid')
  // The model as Compose resolves it (anchors and merges applied), read with the YAML parser Compose uses.
  const resolved = execFileSync('docker-compose', ['-f', 'compose.yaml', 'config'], {
    encoding: 'utf8',
    env: COMPOSE_ENV,
  })
  const json = execFileSync(
    'python3',
    ['-c', 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'],
    { input: resolved, encoding: 'utf8' },
  )
  return JSON.parse(json)
}

async function checkCompose(model) {
  const { SECRET_SETTINGS } = await import('../dist/schemas/env.js')
  const services = model.services
  const nginxConf = readFileSync('deploy/nginx/nginx.conf', 'utf8')
  const replicas = ['app1', 'app2'].map((name) => services[name])

  const publishing = Object.keys(services).filter((name) => (services[name].ports ?? []).length > 0)
  check(
    'compose: only the gateway publishes a port',
    publishing.join() === 'gateway',
    `published: ${publishing}`,
  )

  const migrate = services.migrate
  check(
    'compose: app1, app2 run the migrate image read-only (tmpfs /tmp), MIGRATE_ON_START=false, after migrate succeeded',
    replicas.every(
      (s) =>
        s.image === migrate.image &&
        s.read_only === true &&
        (s.tmpfs ?? []).includes('/tmp') &&
        s.environment.MIGRATE_ON_START === 'false' &&
        s.depends_on?.migrate?.condition === 'service_completed_successfully',
    ) && /dist\/cli\.js migrate/.test(migrate.command.join(' ')),
  )

  const edge = model.networks.edge
  const subnet = edge?.ipam?.config?.[0]?.subnet
  const onEdge = Object.keys(services).filter(
    (name) => services[name].networks && 'edge' in services[name].networks,
  )
  check(
    `compose: TRUST_PROXY is the internal edge network ${subnet}, whose only members are the gateway and the replicas`,
    subnet &&
      edge.internal === true &&
      replicas.every((s) => s.environment.TRUST_PROXY === subnet) &&
      onEdge.sort().join() === 'app1,app2,gateway',
    `edge members: ${onEdge}`,
  )

  const upstreams = [...nginxConf.matchAll(/^\s*server (\d+\.\d+\.\d+\.\d+):3000\b/gm)].map((m) => m[1])
  const addresses = replicas.map((s) => s.networks.edge?.ipv4_address)
  const upstreamKeepalive = durationMs(
    /upstream bulwark \{[^}]*?keepalive_timeout (\w+);/s.exec(nginxConf)?.[1],
  )
  const serviceKeepalive = Math.min(
    ...replicas.map((s) => Number(s.environment.KEEP_ALIVE_TIMEOUT_MS ?? 72_000)),
  )
  // Short syntax (source:target:mode) or long syntax ({ source, target }).
  const mounted = (services.gateway.volumes ?? [])
    .map((v) => (typeof v === 'string' ? { source: v.split(':')[0], target: v.split(':')[1] } : v))
    .some((v) => v.source === join(ROOT, 'deploy/nginx/nginx.conf') && v.target === '/etc/nginx/nginx.conf')
  check(
    'compose: the gateway mounts deploy/nginx/nginx.conf, whose upstreams are app1/app2 and whose upstream keepalive ends before the service closes idle connections',
    mounted &&
      upstreams.join() === addresses.join() &&
      upstreamKeepalive > 0 &&
      upstreamKeepalive < serviceKeepalive,
    `upstreams ${upstreams}, keepalive_timeout ${upstreamKeepalive} ms < KEEP_ALIVE_TIMEOUT_MS ${serviceKeepalive}`,
  )

  const grace = replicas.map((s) => ({
    grace: durationMs(s.stop_grace_period ?? '10s'),
    bound: Number(s.environment.SHUTDOWN_DELAY_MS ?? 0) + Number(s.environment.SHUTDOWN_TIMEOUT_MS ?? 10_000),
  }))
  check(
    'compose: stop_grace_period exceeds SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS',
    grace.every((g) => g.grace > g.bound && Number(replicas[0].environment.SHUTDOWN_DELAY_MS) > 0),
    grace.map((g) => `${g.grace} ms > ${g.bound} ms`).join(', '),
  )

  const leaks = []
  for (const [name, service] of Object.entries(services)) {
    const env = service.environment ?? {}
    const mountedSecrets = new Set((service.secrets ?? []).map((s) => s.source ?? s))
    for (const [key, value] of Object.entries(env)) {
      if (SECRET_SETTINGS.includes(key) || /PASSWORD$/.test(key)) leaks.push(`${name}.${key}`)
      if (key.endsWith('_FILE')) {
        const secret = /^\/run\/secrets\/(.+)$/.exec(value)?.[1]
        if (!secret || !mountedSecrets.has(secret) || !model.secrets?.[secret]?.file)
          leaks.push(`${name}.${key}`)
      }
    }
  }
  check(
    'compose: secrets reach containers only as files in /run/secrets (*_FILE)',
    leaks.length === 0,
    leaks.join(),
  )

  const images = ['postgres', 'redis', 'gateway'].map((name) => services[name].image)
  check(
    'compose: postgres 18, redis 8 and nginx images pinned to an exact release',
    /^postgres:18\.\d+$/.test(images[0]) &&
      /^redis:8\.\d+\.\d+$/.test(images[1]) &&
      /^nginx:1\.\d+\.\d+$/.test(images[2]),
    images.join(', '),
  )
  return model
}

// ---------------------------------------------------------------------------------------------
// Processes: every one started here is tracked by pid and ended at cleanup.

const children = new Set()

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

function childPids(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number)
  } catch {
    return []
  }
}

const alive = (pid) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function waitExit(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.exitCode ?? child.signalCode)
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), timeoutMs)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      resolve(code ?? signal)
    })
  })
}

async function endChild(child, signal = 'SIGTERM', graceMs = 15_000) {
  if (child.exitCode === null && child.signalCode === null) {
    const grandchildren = childPids(child.pid)
    child.kill(signal)
    if ((await waitExit(child, graceMs)) === 'timeout') {
      child.kill('SIGKILL')
      await waitExit(child, 5000)
    }
    for (const pid of grandchildren) if (alive(pid)) process.kill(pid, 'SIGKILL')
  }
  children.delete(child)
}

/** An HTTP request from a given loopback address, on a fresh connection. */
function send(port, method, path, { from = CLIENT, headers = {}, body } = {}) {
  const payload = body === undefined ? undefined : JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        localAddress: from,
        agent: false,
        headers: {
          ...(payload
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
            : {}),
          ...headers,
        },
      },
      (res) => {
        const chunks = []
        res.on('data', (chunk) => chunks.push(chunk))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          let json
          try {
            json = JSON.parse(text)
          } catch {}
          resolve({ status: res.statusCode, headers: res.headers, text, json })
        })
      },
    )
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path}: no answer within 10 s`)))
    req.on('error', reject)
    req.end(payload)
  })
}

function jsonLines(path) {
  if (!existsSync(path)) return []
  const lines = []
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      lines.push(JSON.parse(line))
    } catch {}
  }
  return lines
}

async function until(what, timeoutMs, probe, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await sleep(intervalMs)
  }
}

class Replica {
  constructor(name, port) {
    this.name = name
    this.port = port
    this.log = join(work, `${name}.log`)
    this.child = null
    this.expectExit = false
    this.unexpected = null
  }

  async start(env) {
    const fd = openSync(this.log, 'a')
    this.expectExit = false
    this.child = spawn(process.execPath, ['dist/server.js'], {
      env: { PATH: process.env.PATH, ...env, HOST: '127.0.0.1', PORT: String(this.port) },
      stdio: ['ignore', fd, fd],
    })
    closeSync(fd)
    children.add(this.child)
    const child = this.child
    child.once('exit', (code, signal) => {
      if (!this.expectExit) this.unexpected = `${this.name} exited unexpectedly (${code ?? signal})`
    })
    await until(`${this.name} ready on 127.0.0.1:${this.port}`, 30_000, async () => {
      if (child.exitCode !== null)
        throw new Error(`${this.name} exited with ${child.exitCode}: see ${this.log}`)
      const res = await send(this.port, 'GET', '/health/ready', { from: '127.0.0.1' }).catch(() => null)
      return res?.status === 200
    })
  }

  /** SIGTERM; resolves with the exit code once the process is gone. */
  async terminate(timeoutMs) {
    this.expectExit = true
    const child = this.child
    child.kill('SIGTERM')
    const code = await waitExit(child, timeoutMs)
    if (code === 'timeout') await endChild(child, 'SIGKILL')
    children.delete(child)
    return code
  }

  lines() {
    return jsonLines(this.log)
  }
}

// ---------------------------------------------------------------------------------------------
// nginx with deploy/nginx/nginx.conf: only the lines that name places are swapped.

function drillNginxConf(prefix, listenPort, upstreamPorts) {
  let text = readFileSync('deploy/nginx/nginx.conf', 'utf8')
  const swap = (pattern, replacement, what) => {
    const found = text.match(new RegExp(pattern.source, `${pattern.flags.replace('g', '')}g`)) ?? []
    if (found.length !== 1) {
      throw new CannotRun(`deploy/nginx/nginx.conf: expected one ${what} line, found ${found.length}`)
    }
    text = text.replace(pattern, replacement)
  }
  swap(/^user .*;$/m, '# user: as root without this line, workers run as nobody', 'user')
  swap(/^pid .*;$/m, `pid ${prefix}/nginx.pid;`, 'pid')
  swap(/^error_log .*;$/m, `error_log ${prefix}/error.log warn;`, 'error_log')
  swap(
    /^http \{$/m,
    `http {\n${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
      .map((t) => `    ${t}_temp_path ${prefix}/${t}_temp;`)
      .join('\n')}`,
    'http {',
  )
  swap(
    /^(\s*)access_log \/dev\/stdout bulwark;$/m,
    `$1access_log ${prefix}/access.log bulwark;`,
    'access_log',
  )
  const servers = text.match(/^\s*server \d+\.\d+\.\d+\.\d+:3000 .*;$/gm) ?? []
  if (servers.length !== upstreamPorts.length) {
    throw new CannotRun(`deploy/nginx/nginx.conf: expected ${upstreamPorts.length} upstream servers`)
  }
  let i = 0
  text = text.replace(/^(\s*)server \d+\.\d+\.\d+\.\d+:3000 (.*);$/gm, (_m, indent, params) => {
    return `${indent}server 127.0.0.1:${upstreamPorts[i++]} ${params};`
  })
  swap(/^(\s*)listen 8080;$/m, `$1listen 127.0.0.1:${listenPort};`, 'listen')
  // The drill's additions: the replicas see the gateway at its own address, and the client learns
  // which replica answered.
  swap(
    /^(\s*)proxy_pass http:\/\/bulwark;$/m,
    `$1proxy_pass http://bulwark;\n$1proxy_bind ${GATEWAY_SOURCE};\n$1add_header X-Upstream $upstream_addr always;`,
    'proxy_pass',
  )
  return text
}

async function startNginx(listenPort, upstreamPorts) {
  const prefix = join(work, 'nginx')
  rmSync(prefix, { recursive: true, force: true })
  execFileSync('mkdir', ['-p', prefix])
  const conf = join(prefix, 'nginx.conf')
  writeFileSync(conf, drillNginxConf(prefix, listenPort, upstreamPorts))
  const args = ['-p', prefix, '-c', conf, '-e', join(prefix, 'error.log')]
  const test = spawnSync('nginx', [...args, '-t'], { encoding: 'utf8' })
  if (test.status !== 0) throw new Error(`nginx -t: ${test.stderr.trim()}`)
  const child = spawn('nginx', [...args, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] })
  children.add(child)
  let stderr = ''
  child.stderr.on('data', (chunk) => {
    stderr += chunk
  })
  await until('nginx listening', 10_000, async () => {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr.trim()}`)
    const res = await send(listenPort, 'GET', '/health/live', { from: PROBE }).catch(() => null)
    return res !== null
  })
  return { child, accessLog: join(prefix, 'access.log'), errorLog: join(prefix, 'error.log') }
}

// ---------------------------------------------------------------------------------------------
// Cleanup: processes, nginx, database, Redis keys; the work directory only when everything passed.

let adminSql = null
let database = null
let redis = null
let smtpSink = null
let cleaned = false

async function cleanup() {
  if (cleaned) return
  cleaned = true
  // Throwaway secrets, but secrets: never left behind, even when the logs are kept.
  rmSync(join(work, 'secrets'), { recursive: true, force: true })
  for (const child of [...children]) await endChild(child, 'SIGTERM', 15_000).catch(() => {})
  if (smtpSink) await new Promise((resolve) => smtpSink.close(resolve))
  if (database && adminSql) {
    await adminSql
      .unsafe(`drop database if exists ${database} with (force)`)
      .then(() => console.log(`== dropped database ${database}`))
      .catch((e) => console.error(`could not drop database ${database}: ${e.message}`))
  }
  await adminSql?.end({ timeout: 5 }).catch(() => {})
  if (redis) {
    let removed = 0
    try {
      let cursor = '0'
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefixForRun}*`, 'COUNT', 1000)
        cursor = next
        if (keys.length > 0) removed += await redis.del(...keys)
      } while (cursor !== '0')
      console.log(`== removed ${removed} Redis keys under ${prefixForRun}`)
    } catch (e) {
      console.error(`could not remove Redis keys under ${prefixForRun}: ${e.message}`)
    }
    redis.disconnect()
  }
}

const prefixForRun = `bulwark-gateway-check:${run}:`

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    console.error(`gateway:check: ${signal}, cleaning up`)
    await cleanup()
    process.exit(1)
  })
}

// ---------------------------------------------------------------------------------------------
// Clients of the gateway.

const REFRESH_COOKIE = /^((?:__Secure-)?refresh_token)=([^;]*)/

function refreshCookie(res) {
  for (const line of res.headers['set-cookie'] ?? []) {
    const match = REFRESH_COOKIE.exec(line)
    if (match?.[2]) return `${match[1]}=${match[2]}`
  }
  return null
}

async function main() {
  // --- prerequisites ------------------------------------------------------------------------
  console.log(`== node ${process.version}; work directory ${work}`)
  if (buildIfStale()) console.log('== built dist/')
  aptInstall('docker-compose', 'docker-compose')
  aptInstall('nginx', 'nginx')
  const nginxVersion = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim()
  console.log(`== ${nginxVersion}`)

  if (!readFileSync('dist/server.js', 'utf8').includes('SHUTDOWN_DELAY_MS')) {
    notes.push(
      'dist/server.js does not read SHUTDOWN_DELAY_MS: a replica closes at once on SIGTERM (no readiness drain)',
    )
  }
  const model = loadCompose()
  await checkCompose(model)

  const postgres = (await import('postgres')).default
  const { default: Redis } = await import('ioredis')
  const { splitRoles } = await import('../dist/lib/embedded-postgres.js')

  // --- a fresh database, then compose.yaml's roles and migrate jobs -----------------------------
  adminSql = postgres(ADMIN_URL, { max: 1, onnotice: () => {}, connect_timeout: 5 })
  try {
    await adminSql`select 1`
  } catch (e) {
    throw new CannotRun(`PostgreSQL at ${new URL(ADMIN_URL).host} is not reachable: ${e.message}`)
  }
  database = `bulwark_gw_${process.pid}_${run}`
  await adminSql.unsafe(`create database ${database}`)
  const dbUrl = new URL(ADMIN_URL)
  dbUrl.pathname = `/${database}`
  // The runtime and owner roles, named and with the passwords the test kit uses on this server.
  const roles = await splitRoles(dbUrl.toString())
  redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false })
  let redisError = null
  redis.on('error', (e) => {
    redisError ??= e
  })
  try {
    await redis.connect()
    await redis.ping()
  } catch (e) {
    redis.disconnect()
    redis = null
    throw new CannotRun(`Redis at ${REDIS_URL} is not reachable: ${(redisError ?? e).message}`)
  }

  // Mail: an SMTP server on this machine (smtp-server, a devDependency) that keeps what it is sent.
  const { SMTPServer } = await import('smtp-server')
  const received = []
  smtpSink = new SMTPServer({
    authOptional: true,
    disableReverseLookup: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, done) {
      let raw = ''
      stream.on('data', (chunk) => {
        raw += chunk
      })
      stream.on('end', () => {
        received.push(raw)
        done()
      })
    },
  })
  await new Promise((resolve) => smtpSink.listen(0, '127.0.0.1', resolve))

  // The secrets as files, read through the *_FILE variables compose.yaml sets.
  const secretsDir = join(work, 'secrets')
  execFileSync('mkdir', ['-m', '700', '-p', secretsDir])
  const secrets = {
    postgres_admin_url: dbUrl.toString(),
    database_url: roles.DATABASE_URL,
    database_migration_url: roles.DATABASE_MIGRATION_URL,
    redis_url: REDIS_URL,
    jwt_secret: randomBytes(48).toString('base64url'),
    data_encryption_keys: `g1:${randomBytes(32).toString('base64')}`,
    data_index_key: randomBytes(32).toString('base64'),
    password_pepper: randomBytes(32).toString('base64'),
    // On this host: plain smtp:// is allowed in production over loopback.
    smtp_url: `smtp://127.0.0.1:${smtpSink.server.address().port}`,
  }
  for (const [name, value] of Object.entries(secrets))
    writeFileSync(join(secretsDir, name), `${value}\n`, { mode: 0o600 })
  const inSecrets = (value) => String(value).replaceAll('/run/secrets/', `${secretsDir}/`)
  const envOf = (service) =>
    Object.fromEntries(
      Object.entries(model.services[service].environment ?? {}).map(([k, v]) => [k, inSecrets(v)]),
    )

  // compose.yaml's one-shot jobs, their command and environment as written there.
  for (const job of ['roles', 'migrate']) {
    const command = model.services[job].command.map(inSecrets)
    const ran = spawnSync(command[0], command.slice(1), {
      env: { PATH: process.env.PATH, ...envOf(job) },
      encoding: 'utf8',
    })
    const output = `${ran.stdout}${ran.stderr}`.trim().replaceAll('\n', '; ')
    check(`${job}: compose.yaml's ${job} job succeeds`, ran.status === 0, output)
    if (ran.status !== 0) throw new Error(`the ${job} job failed`)
  }

  // --- replicas and the gateway ---------------------------------------------------------------
  const replicaEnv = (phase) => {
    const env = envOf('app1')
    delete env.PUBLIC_ORIGIN
    return {
      ...env,
      TRUST_PROXY: `${GATEWAY_SOURCE}/32`,
      RATE_LIMIT_KEY_PREFIX: prefixForRun,
      SHUTDOWN_DELAY_MS: String(DRAIN_DELAY_MS),
      BCRYPT_COST: '10',
      // A consumed refresh token presented again is theft at once (no racing-tab grace).
      REFRESH_REUSE_GRACE_SECONDS: '0',
      ...(phase === 'limits'
        ? { RATE_LIMIT_MAX: String(GLOBAL_LIMIT), LOGIN_RATE_LIMIT_MAX: String(LOGIN_LIMIT) }
        : { RATE_LIMIT_MAX: '1000000', LOGIN_RATE_LIMIT_MAX: '1000' }),
    }
  }
  const [port1, port2, gatewayPort] = [await freePort(), await freePort(), await freePort()]
  const replicas = [new Replica('app1', port1), new Replica('app2', port2)]
  const byPort = new Map(replicas.map((r) => [`127.0.0.1:${r.port}`, r]))
  await Promise.all(replicas.map((r) => r.start(replicaEnv('limits'))))
  const gateway = await startNginx(gatewayPort, [port1, port2])
  console.log(
    `== ${replicas.map((r) => `${r.name} on 127.0.0.1:${r.port}`).join(', ')}; gateway on 127.0.0.1:${gatewayPort}`,
  )
  const healthcheck = model.services.app1.healthcheck.test.slice(1)
  for (const r of replicas) {
    const probe = healthcheck.map((arg) => arg.replace('127.0.0.1:3000', `127.0.0.1:${r.port}`))
    const ok = spawnSync(probe[0], probe.slice(1), { timeout: 10_000 }).status === 0
    check(`health: compose.yaml's healthcheck command passes against ${r.name}`, ok)
  }

  const via = (method, path, options) => send(gatewayPort, method, path, options)
  /** The replica that answered, from the drill's X-Upstream header (the last one nginx tried). */
  const served = (res) =>
    byPort.get(
      String(res.headers['x-upstream'] ?? '')
        .split(', ')
        .at(-1),
    ) ?? null
  const other = (replica) => (replica === replicas[0] ? replicas[1] : replicas[0])
  /** Makes the round robin's next pick `replica`: probes until the last one went to the other. */
  const steerTo = async (replica) => {
    for (let i = 0; i < 4; i++) {
      const res = await via('GET', '/health/live', { from: PROBE })
      if (served(res) === other(replica)) return
    }
    throw new Error('the gateway does not alternate between the replicas')
  }
  const on = async (replica, method, path, options) => {
    await steerTo(replica)
    const res = await via(method, path, options)
    if (served(res) !== replica) {
      throw new Error(`${method} ${path} was meant for ${replica.name}, answered by ${served(res)?.name}`)
    }
    return res
  }
  const bearer = (token) => ({ authorization: `Bearer ${token}` })

  // --- a. one login, both replicas --------------------------------------------------------------
  const username = `gw${run}`
  const registered = await via('POST', '/api/auth/register', {
    body: { username, email: `${username}@example.com`, password: PASSWORD },
  })
  if (registered.status !== 201) throw new Error(`register: ${registered.status} ${registered.text}`)
  const login = async (from = CLIENT) => {
    const res = await via('POST', '/api/auth/login', { from, body: { username, password: PASSWORD } })
    return { res, replica: served(res), access: res.json?.accessToken, refresh: refreshCookie(res) }
  }
  const first = await login()
  if (first.res.status !== 200 || !first.refresh)
    throw new Error(`login: ${first.res.status} ${first.res.text}`)
  const me = await on(other(first.replica), 'GET', '/api/users/me', { headers: bearer(first.access) })
  check(
    `a. a login answered by ${first.replica.name} is honoured by ${other(first.replica).name}`,
    me.status === 200 && me.json?.user?.username === username,
    `GET /api/users/me ${me.status} on ${served(me)?.name}`,
  )
  const sessions = await on(first.replica, 'GET', '/api/auth/sessions', { headers: bearer(first.access) })
  const current = sessions.json?.items?.find((s) => s.current)
  check(
    `a. the replicas record the real client address ${CLIENT}, not the gateway's ${GATEWAY_SOURCE}`,
    sessions.status === 200 && current?.ip === CLIENT,
    `session ip ${current?.ip}`,
  )

  // --- a browser's cookie-carried request through the gateway: its Origin is the gateway's origin,
  // port included, and the CSRF check must recognise it as same-origin (and a foreign one not).
  const browser = await login()
  const gatewayOrigin = `http://127.0.0.1:${gatewayPort}`
  const foreign = await on(other(browser.replica), 'POST', '/api/auth/refresh', {
    headers: { cookie: browser.refresh, origin: 'https://evil.example' },
  })
  const sameOrigin = await on(other(browser.replica), 'POST', '/api/auth/refresh', {
    headers: { cookie: browser.refresh, origin: gatewayOrigin },
  })
  check(
    `a. a browser's refresh through the gateway with Origin ${gatewayOrigin} is same-origin; a foreign Origin is refused`,
    sameOrigin.status === 200 && foreign.status === 403,
    `same origin ${sameOrigin.status}, foreign ${foreign.status}`,
  )

  // --- b. refresh rotation across replicas, reuse detection on either ----------------------------
  const refreshOn = (replica, cookie) => on(replica, 'POST', '/api/auth/refresh', { headers: { cookie } })
  let token = first.refresh
  let holder = first.replica // the replica whose answer carried `token`
  const consumed = []
  let rotations = 0
  for (let i = 0; i < 4; i++) {
    const target = other(holder)
    const res = await refreshOn(target, token)
    const next = refreshCookie(res)
    const works =
      res.status === 200
        ? await on(holder, 'GET', '/api/users/me', { headers: bearer(res.json.accessToken) })
        : null
    if (res.status !== 200 || !next || next === token || works?.status !== 200) {
      check(`b. refresh ${i + 1} on ${target.name}`, false, `${res.status} ${res.text.slice(0, 200)}`)
      break
    }
    consumed.push({ token, by: target })
    token = next
    holder = target
    rotations++
  }
  check(
    'b. 4 refreshes alternating replicas: each rotated the token, each new access token worked on the other replica',
    rotations === 4,
    `${rotations} rotations`,
  )
  const last = consumed.at(-1)
  const reuse = await refreshOn(last.by, last.token)
  const liveAfter = await refreshOn(other(last.by), token)
  check(
    `b. reuse of a consumed refresh token on ${last.by.name} (which consumed it) is refused and revokes the session on ${other(last.by).name} too`,
    reuse.status === 401 && liveAfter.status === 401,
    `reuse ${reuse.status}, live token then ${liveAfter.status}`,
  )
  const second = await login()
  const rotated = await refreshOn(other(second.replica), second.refresh)
  const rotatedBy = other(second.replica)
  const reuse2 = await refreshOn(second.replica, second.refresh)
  const live2 = await refreshOn(rotatedBy, refreshCookie(rotated) ?? '')
  const access2 = []
  for (const r of replicas) {
    access2.push(await on(r, 'GET', '/api/users/me', { headers: bearer(rotated.json?.accessToken ?? '') }))
  }
  check(
    `b. reuse on ${second.replica.name} of a token ${rotatedBy.name} consumed is detected too: session revoked on both`,
    rotated.status === 200 &&
      reuse2.status === 401 &&
      live2.status === 401 &&
      access2.every((r) => r.status === 401),
    `rotate ${rotated.status}, reuse ${reuse2.status}, live token ${live2.status}, access token ${access2.map((r) => r.status)}`,
  )

  // --- c. shared limits that count the real client ------------------------------------------------
  const attempts = []
  for (let i = 0; i < LOGIN_LIMIT; i++) attempts.push(await login(LOGIN_LIMITED))
  const overLogin = await login(LOGIN_LIMITED)
  const forgedLogin = await via('POST', '/api/auth/login', {
    from: LOGIN_LIMITED,
    headers: { 'x-forwarded-for': FORGED_FOR },
    body: { username, password: PASSWORD },
  })
  const otherLogin = await login(LOGIN_OTHER)
  const loginSplit = replicas.map((r) => attempts.filter((a) => a.replica === r).length)
  check(
    `c. login limit ${LOGIN_LIMIT} is shared: ${LOGIN_LIMIT} logins from ${LOGIN_LIMITED} (${loginSplit.join(' + ')} per replica), then 429`,
    attempts.every((a) => a.res.status === 200) &&
      loginSplit.every((n) => n > 0) &&
      overLogin.res.status === 429 &&
      Number(overLogin.res.headers['retry-after']) > 0,
    `then ${overLogin.res.status} on ${overLogin.replica?.name}`,
  )
  check(
    `c. login limit counts the client, not the gateway: a forged X-Forwarded-For is still 429, ${LOGIN_OTHER} is let in`,
    forgedLogin.status === 429 && otherLogin.res.status === 200,
    `forged ${forgedLogin.status}, other client ${otherLogin.res.status}`,
  )
  const listed = []
  for (let i = 0; i < GLOBAL_LIMIT; i++) {
    const res = await via('GET', '/api/comments?limit=1', { from: GLOBAL_LIMITED })
    listed.push({ status: res.status, replica: served(res) })
  }
  const overGlobal = await via('GET', '/api/comments?limit=1', { from: GLOBAL_LIMITED })
  const forgedGlobal = await via('GET', '/api/comments?limit=1', {
    from: GLOBAL_LIMITED,
    headers: { 'x-forwarded-for': FORGED_FOR },
  })
  const otherGlobal = await via('GET', '/api/comments?limit=1', { from: GLOBAL_OTHER })
  const globalSplit = replicas.map((r) => listed.filter((l) => l.replica === r).length)
  check(
    `c. global limit ${GLOBAL_LIMIT} is shared: ${GLOBAL_LIMIT} requests from ${GLOBAL_LIMITED} (${globalSplit.join(' + ')} per replica), then 429`,
    listed.every((l) => l.status === 200) && globalSplit.every((n) => n > 0) && overGlobal.status === 429,
    `then ${overGlobal.status} on ${served(overGlobal)?.name}`,
  )
  check(
    `c. global limit counts the client, not the gateway: a forged X-Forwarded-For is still 429, ${GLOBAL_OTHER} is let in`,
    forgedGlobal.status === 429 && otherGlobal.status === 200,
    `forged ${forgedGlobal.status}, other client ${otherGlobal.status}`,
  )

  // --- d. request ids ---------------------------------------------------------------------------
  const forgedId = `forged-by-client-${run}`
  for (const replica of replicas) {
    const res = await on(replica, 'GET', '/api/comments?limit=1', { headers: { 'x-request-id': forgedId } })
    const id = String(res.headers['x-request-id'] ?? '')
    const logged = await until('the access log line', 3000, () =>
      jsonLines(gateway.accessLog).find((l) => l.request_id === id && id !== ''),
    ).catch(() => null)
    const inLog = await until(`${replica.name}'s log line`, 3000, () =>
      replica.lines().find((l) => l.requestId === id && l.event === 'request'),
    ).catch(() => null)
    const elsewhere = other(replica)
      .lines()
      .some((l) => l.requestId === id)
    check(
      `d. the gateway's request id replaces the client's, is echoed, and is in ${replica.name}'s log (not the other's)`,
      /^[0-9a-f]{32}$/.test(id) &&
        logged?.remote_addr === CLIENT &&
        byPort.get(logged?.upstream_addr) === replica &&
        inLog?.status === 200 &&
        !elsewhere,
      `x-request-id ${id}`,
    )
  }
  const gatewayIds = new Set(jsonLines(gateway.accessLog).map((l) => l.request_id))
  const carried = replicas.map(
    (r) => r.lines().filter((l) => l.event === 'request' && gatewayIds.has(l.requestId)).length,
  )
  check(
    "d. both replicas' request log lines carry the gateway's ids",
    carried.every((n) => n > 0),
    replicas.map((r, i) => `${r.name} ${carried[i]}`).join(', '),
  )
  for (const r of replicas) if (r.unexpected) check(r.unexpected, false)

  // --- e. rolling restart under load ------------------------------------------------------------
  console.log('== restarting both replicas with a high global limit for the load phase')
  const phaseExits = await Promise.all(replicas.map((r) => r.terminate(DRAIN_DELAY_MS + 15_000)))
  check(
    'e. both replicas stop with exit code 0 on SIGTERM',
    phaseExits.every((c) => c === 0),
    `exit ${phaseExits}`,
  )
  await Promise.all(replicas.map((r) => r.start(replicaEnv('load'))))
  const loadLogin = await login(LOAD)
  if (loadLogin.res.status !== 200) throw new Error(`login for the load: ${loadLogin.res.status}`)
  const isLoad = (path) => LOAD_PATHS.includes(path)
  const accessLines = () =>
    jsonLines(gateway.accessLog).filter((l) => l.remote_addr === LOAD && isLoad(l.uri))
  const loadStart = accessLines().length

  // autocannon has no source-address option: its connections to the gateway leave from LOAD.
  const { default: autocannon } = await import('autocannon')
  const realConnect = net.connect
  net.connect = function connectFromLoad(...args) {
    if (Number(args[0]) === gatewayPort && typeof args[1] === 'string') {
      return realConnect.call(net, { port: gatewayPort, host: args[1], localAddress: LOAD })
    }
    return realConnect.apply(net, args)
  }
  let finishLoad
  const loadDone = new Promise((resolve) => {
    finishLoad = resolve
  })
  const cannon = autocannon(
    {
      url: `http://127.0.0.1:${gatewayPort}`,
      requests: [
        { method: 'GET', path: LOAD_PATHS[0], headers: bearer(loadLogin.access) },
        {
          method: 'POST',
          path: LOAD_PATHS[1],
          headers: { ...bearer(loadLogin.access), 'content-type': 'application/json' },
          body: '{"body":"posted during a rolling restart"}',
        },
      ],
      connections: LOAD_CONNECTIONS,
      duration: 120,
      timeout: 10,
    },
    (err, result) => finishLoad({ err, result }),
  )
  const restarts = []
  try {
    // Let the gateway's keep-alive pools fill first, as a rollout waits between replicas: a replica
    // stopped while nginx is still opening connections to it has some in its accept queue when the
    // listener closes, and the kernel resets those (a POST on one is a 502; see docs/deploy.md).
    await sleep(WARM_UP_MS)
    for (const replica of replicas) {
      const t0 = Date.now()
      const mark = replica.lines().length
      const readiness = []
      let stopping = true
      const watch = (async () => {
        while (stopping) {
          // A new connection each time, as a load balancer's probe: answered, or refused once closed.
          const ready = await send(replica.port, 'GET', '/health/ready', { from: '127.0.0.1' }).then(
            (res) => res.status,
            (error) => error.code ?? String(error),
          )
          readiness.push({ ready, at: Date.now() - t0 })
          await sleep(200)
        }
      })()
      const code = await replica.terminate(DRAIN_DELAY_MS + 15_000)
      stopping = false
      await watch
      const exitedAfter = Date.now() - t0
      // Load requests the replica answered after it logged the signal: open connections still served.
      const after = replica.lines().slice(mark)
      const signalledAt = after.findIndex((l) => l.event === 'server.shutdown')
      const drained =
        signalledAt < 0
          ? 0
          : after.slice(signalledAt).filter((l) => l.event === 'request' && isLoad(l.path)).length
      await replica.start(replicaEnv('load'))
      const readyAfter = Date.now() - t0
      const restartMark = replica.lines().length
      await until(`the gateway sending load to the restarted ${replica.name}`, 20_000, () =>
        replica
          .lines()
          .slice(restartMark)
          .some((l) => l.event === 'request' && isLoad(l.path)),
      )
      const servingAfter = Date.now() - t0
      restarts.push({ replica, code, readiness, drained, exitedAfter, readyAfter, servingAfter })
    }
    await sleep(2000)
  } finally {
    cannon.stop()
  }
  const { err, result } = await loadDone
  net.connect = realConnect
  if (err) throw err

  for (const r of restarts) {
    // From the first refusal on, every probe is refused: the listener closed at SIGTERM and never reopened.
    const firstRefused = r.readiness.findIndex((p) => p.ready === 'ECONNREFUSED')
    const refusedAfter = firstRefused < 0 ? [] : r.readiness.slice(firstRefused)
    check(
      `e. ${r.replica.name}: SIGTERM → new connections refused at once, open ones still served (${r.drained} load requests answered after the signal), exit 0`,
      r.code === 0 &&
        firstRefused >= 0 &&
        refusedAfter.every((p) => p.ready === 'ECONNREFUSED') &&
        r.drained > 0,
      `exit ${r.code} after ${r.exitedAfter} ms; probes ${r.readiness.map((p) => p.ready).join(',')}; restarted and ready at ${r.readyAfter} ms, served through the gateway at ${r.servingAfter} ms`,
    )
  }
  const lines = accessLines().slice(loadStart)
  const retried = lines.filter((l) => String(l.upstream_addr).includes(', '))
  const gatewayErrors = lines.filter((l) => l.status >= 500)
  const abandoned = lines.filter((l) => l.status === 499).length // in flight when autocannon stopped
  const sent = result.requests.sent
  const answered = result.requests.total
  const failed = result.non2xx + result.errors + result.timeouts
  check(
    `e. rolling restart under load (GET ${LOAD_PATHS[0]} and POST ${LOAD_PATHS[1]}, ${LOAD_CONNECTIONS} connections, ${result.duration} s): no request lost`,
    failed === 0 &&
      result.non2xx === 0 &&
      result.errors === 0 &&
      result.timeouts === 0 &&
      gatewayErrors.length === 0,
    `sent ${sent}, answered ${answered} (2xx ${result['2xx']}), non-2xx ${result.non2xx}, errors ${result.errors}, timeouts ${result.timeouts}`,
  )
  notes.push(
    `rolling restart: ${sent} requests sent, ${answered} answered, ${result['2xx']} 2xx, ${failed} failed ` +
      `(non-2xx ${result.non2xx}, errors ${result.errors}, timeouts ${result.timeouts}); ` +
      `${retried.length} retried by the gateway on the other replica; ${gatewayErrors.length} gateway 5xx; ` +
      `${abandoned} still in flight when the load stopped; ${Math.round(result.requests.average)} req/s average`,
  )
  for (const r of restarts) {
    notes.push(
      `${r.replica.name}: exit ${r.code} ${r.exitedAfter} ms after SIGTERM (SHUTDOWN_DELAY_MS ${DRAIN_DELAY_MS}), ` +
        `ready again at ${r.readyAfter} ms, receiving gateway traffic at ${r.servingAfter} ms`,
    )
  }
  if (retried.length > 0) {
    const sample = retried.slice(0, 3).map((l) => `${l.upstream_addr} → ${l.upstream_status}`)
    notes.push(`gateway retries (upstream tried → status): ${sample.join('; ')}`)
  }
  for (const r of replicas) if (r.unexpected) check(r.unexpected, false)

  // --- f. mail: what the drill queued, each row sent once by one of the two workers --------------
  const appSql = postgres(roles.DATABASE_URL, { max: 1, onnotice: () => {} })
  try {
    const unsent = async () =>
      (await appSql`select count(*)::int as n from outbox where sent_at is null and failed_at is null`)[0].n
    await until('the outbox is empty', 30_000, async () => (await unsent()) === 0)
    const rows = await appSql`select id::text, template, sent_at is not null as sent from outbox`
    const messageIds = received.map((raw) => /^Message-ID: <([0-9a-f-]{36})@/im.exec(raw)?.[1])
    const sentIds = rows.filter((r) => r.sent).map((r) => r.id)
    const templates = [...new Set(rows.map((r) => r.template))].join(', ')
    check(
      `f. mail: each of the ${rows.length} mails the drill queued (${templates}) was sent once, by either replica, across the rolling restart`,
      rows.length > 0 &&
        sentIds.length === rows.length &&
        messageIds.length === rows.length &&
        new Set(messageIds).size === rows.length &&
        sentIds.every((id) => messageIds.includes(id)),
      `${received.length} received by the SMTP server for ${rows.length} outbox rows (${sentIds.length} sent)`,
    )
  } finally {
    await appSql.end({ timeout: 5 })
  }

  const finalExits = await Promise.all(replicas.map((r) => r.terminate(DRAIN_DELAY_MS + 15_000)))
  check(
    'e. both replicas stop with exit code 0 at the end',
    finalExits.every((c) => c === 0),
    `exit ${finalExits}`,
  )
  const errors = existsSync(gateway.errorLog)
    ? readFileSync(gateway.errorLog, 'utf8').trim().split('\n').filter(Boolean)
    : []
  // Why the gateway retried: a refused connection means the request was never sent (safe to retry for
  // any method); a reset or close after sending is retried by nginx only for idempotent methods.
  const kinds = new Map()
  for (const line of errors) {
    const kind = /\] \d+#\d+: \*\d+ (.*?) while /.exec(line)?.[1] ?? line.replace(/^.*?\] /, '')
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
  }
  for (const [kind, n] of kinds) notes.push(`nginx error log: ${n} × ${kind}`)
}

let code = 0
try {
  await main()
} catch (error) {
  if (error instanceof CannotRun) report(false, `cannot run on this machine: ${error.message}`)
  else report(false, `aborted: ${error.stack ?? error}`)
} finally {
  await cleanup()
}
const failed = results.filter((r) => !r.ok).length
const passed = results.length - failed
console.log('')
for (const note of notes) console.log(`   ${note}`)
console.log(`   gateway:check took ${((Date.now() - started) / 1000).toFixed(1)} s`)
if (failed === 0 && !process.env.GATEWAY_CHECK_KEEP_LOGS) rmSync(work, { recursive: true, force: true })
else console.log(`   logs kept in ${work}`)
console.log(`${passed} passed, ${failed} failed`)
code = failed === 0 && passed > 0 ? 0 : 1
process.exit(code)
