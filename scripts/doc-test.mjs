// `npm run docs:test`: README.md's walkthrough, executed, so the door a newcomer opens stays open.
//
// The convention, for whoever edits README.md:
// - Every ```sh (or ```bash) block runs, in README order, in one bash session (`set -euo pipefail`,
//   so variables such as $TOKEN carry from block to block), from the repository root. The first
//   failing command fails the run, which prints the block's line in README.md and its output.
// - ```console, ```json and every other fence are never run: use ```console for example output.
// - `<!-- doc-test: skip (the reason) -->` as the last line before a block leaves that block out
//   (`npm ci && npm start`, which this script replaces by starting the service itself; examples
//   that need an authenticator app). Any other `doc-test:` comment is an error.
// - `localhost:3000` in a block means the service this script starts: a fresh process of the built
//   service (dist/server.js) on a free port, with a fresh database (a new database on DATABASE_URL's
//   server when DATABASE_URL is set, else the embedded PostgreSQL in a temporary directory) and no
//   REDIS_URL, so every rate limit starts from zero. Blocks see the same database settings (the CLI
//   works on the service's database) and NODE_ENV=test (a developer's .env is not read).
// - Blocks should assert what they claim where it is cheap: `curl -f`, `| grep -x 204`, `| grep -F`.
// - Relative links in README.md must name a file inside the repository; the walkthrough must leave
//   no new untracked file in the repository.
// - SIGINT/SIGTERM stop the blocks (their whole process group) and the service, and the database and
//   the temporary directory are still removed; the exit code is 130/143.
import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { buildIfStale } from './build-if-stale.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const README = join(ROOT, 'README.md')
const RUN_FENCES = new Set(['sh', 'bash'])
const BLOCKS_TIMEOUT_MS = 120_000
const START_TIMEOUT_MS = 60_000

/** The fenced blocks of a Markdown text, with their opening line (1-based) and skip marker. */
export function extractBlocks(text) {
  const lines = text.split('\n')
  const blocks = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i] ?? '')
    if (!open) continue
    const start = i
    const body = []
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i] ?? ''); i++) body.push(lines[i])
    let before = start - 1
    while (before >= 0 && (lines[before] ?? '').trim() === '') before--
    const marker = /^<!--\s*doc-test:\s*(.*?)\s*-->$/.exec((lines[before] ?? '').trim())
    if (marker && !/^skip\b/.test(marker[1] ?? '')) {
      throw new Error(`README.md:${before + 1}: unknown doc-test directive "${marker[1]}" (only "skip")`)
    }
    blocks.push({ line: start + 1, lang: open[1] ?? '', code: body.join('\n'), skip: Boolean(marker) })
  }
  return blocks
}

/** Relative Markdown links that name nothing inside the repository. */
export function badLinks(text, root = ROOT) {
  const bad = []
  for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue
    const path = resolve(root, target.split('#')[0] ?? '')
    const inside = !relative(root, path).startsWith('..')
    if (!inside || !existsSync(path)) bad.push(target)
  }
  return bad
}

/** One bash script for every runnable block, each announced by a marker line on the shared output. */
function script(blocks, base, nonce) {
  const parts = ['set -euo pipefail', 'shopt -s inherit_errexit', 'exec 2>&1']
  blocks.forEach((block, index) => {
    parts.push(`printf '\\n@@doc-test ${nonce} ${index}@@\\n'`)
    parts.push(block.code.replaceAll('localhost:3000', base))
  })
  parts.push(`printf '\\n@@doc-test ${nonce} end@@\\n'`)
  return `${parts.join('\n')}\n`
}

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer().once('error', fail)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => done(port))
    })
  })
}

const readIfExists = (path) => (existsSync(path) ? readFileSync(path, 'utf8') : '')

/** Whether the signal reached the process (0: whether it is alive). */
function signalPid(pid, signal) {
  try {
    process.kill(pid, signal)
    return true
  } catch {
    return false
  }
}

const untracked = () =>
  execFileSync('git', ['ls-files', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)

/** A fresh database: a new one on DATABASE_URL's server, else the embedded default in a temp dir. */
async function freshDatabase(work) {
  const adminUrl = process.env.DATABASE_URL
  if (!adminUrl) {
    const env = { EMBEDDED_DB_DIR: join(work, 'postgres') }
    // A service that had to be killed leaves its postmaster running: stop it before its directory goes.
    const drop = async () => {
      const pid = Number.parseInt(readIfExists(join(env.EMBEDDED_DB_DIR, 'postmaster.pid')), 10)
      if (!(pid > 0) || !signalPid(pid, 'SIGINT')) return
      for (let i = 0; i < 100 && signalPid(pid, 0); i++) await sleep(100)
    }
    return { env, label: `embedded PostgreSQL in ${env.EMBEDDED_DB_DIR}`, drop }
  }
  const { default: postgres } = await import('postgres')
  const name = `bulwark_doctest_${process.pid}_${randomBytes(3).toString('hex')}`
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database ${name}`)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return {
    env: { DATABASE_URL: url.toString() },
    label: `database ${name} on ${url.host}`,
    drop: async () => {
      await admin.unsafe(`drop database if exists ${name} with (force)`).catch(() => {})
      await admin.end({ timeout: 5 })
    },
  }
}

/**
 * SIGINT or SIGTERM (Ctrl-C, a CI timeout) stops the walkthrough and the service, and still drops
 * the database and the temporary directory: a signal's default would leave all of them behind.
 */
const stop = { signal: null, children: new Set() }
function onSignal(signal) {
  stop.signal ??= signal
  for (const kill of stop.children) kill('SIGTERM')
}

/** Signals a child, or the whole process group of a detached one (nothing it started lives on). */
function signalChild(child, signal, group = false) {
  try {
    process.kill(group ? -child.pid : child.pid, signal)
  } catch {
    // already gone
  }
}

const running = (child) => child.exitCode === null && child.signalCode === null

async function main() {
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const text = readFileSync(README, 'utf8')
  const links = badLinks(text)
  if (links.length > 0) {
    console.error(`docs:test: README.md links outside the repository or to nothing: ${links.join(', ')}`)
    return 1
  }
  const blocks = extractBlocks(text).filter((b) => RUN_FENCES.has(b.lang) && !b.skip)
  buildIfStale()
  const before = new Set(untracked())
  const work = mkdtempSync(join(tmpdir(), 'bulwark-doctest-'))
  // As root, PostgreSQL runs as the `postgres` user, which must reach the data directory inside.
  chmodSync(work, 0o755)
  const database = await freshDatabase(work)
  if (stop.signal) {
    await database.drop()
    rmSync(work, { recursive: true, force: true })
    return interrupted()
  }
  const port = await freePort()
  const env = { ...process.env, NODE_ENV: 'test', ...database.env }
  for (const name of [
    'REDIS_URL',
    'REDIS_URL_FILE',
    'DATABASE_MIGRATION_URL',
    'DATABASE_URL_FILE',
    'LOG_FORMAT',
  ]) {
    delete env[name]
  }
  if (!database.env.DATABASE_URL) delete env.DATABASE_URL
  const logFile = join(tmpdir(), `bulwark-doctest-${process.pid}.log`)
  let serviceLog = ''
  const service = spawn(process.execPath, ['dist/server.js'], {
    cwd: ROOT,
    env: { ...env, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  stop.children.add((signal) => signalChild(service, signal))
  const keep = (chunk) => {
    serviceLog = (serviceLog + chunk).slice(-200_000)
  }
  service.stdout.on('data', keep)
  service.stderr.on('data', keep)
  const base = `127.0.0.1:${port}`
  try {
    console.log(
      `docs:test: ${blocks.length} blocks of README.md against ${base} (${database.label}; work in ${work})`,
    )
    if (!(await ready(base, service)) && !stop.signal) {
      const why =
        service.exitCode === null
          ? `was not ready within ${START_TIMEOUT_MS / 1000} s`
          : `exited (${service.exitCode})`
      console.error(`docs:test: the service ${why}:\n${serviceLog}`)
      return 1
    }
    const nonce = randomBytes(6).toString('hex')
    const file = join(work, 'walkthrough.sh')
    writeFileSync(file, script(blocks, base, nonce))
    if (stop.signal) return interrupted()
    const { code, output } = await runBash(file, env)
    if (stop.signal) return interrupted()
    const sections = output.split(new RegExp(`\\n?@@doc-test ${nonce} (\\d+|end)@@\\n`))
    // split with a capture group: [preamble, id, text, id, text, ...]
    let last = null
    const outputs = new Map()
    for (let i = 1; i < sections.length; i += 2) {
      last = sections[i]
      outputs.set(last, sections[i + 1] ?? '')
    }
    if (code === 0 && last === 'end') {
      const left = untracked().filter((f) => !before.has(f))
      if (left.length > 0) {
        console.error(`docs:test: the walkthrough left files in the repository: ${left.join(', ')}`)
        return 1
      }
      console.log(`docs:test: all ${blocks.length} blocks passed`)
      return 0
    }
    const failed = last === null || last === 'end' ? null : blocks[Number(last)]
    console.error(
      failed
        ? `docs:test: README.md:${failed.line}: this block failed (exit ${code}):\n${failed.code}\n--- its output ---\n${outputs.get(last)}`
        : `docs:test: bash failed (exit ${code}) outside any block:\n${output}`,
    )
    writeFileSync(logFile, serviceLog)
    console.error(`--- the service's log: ${logFile} (kept)`)
    return 1
  } finally {
    // Already gone (a crash, a signal): 'close' will not come again, so do not wait for it.
    if (running(service)) {
      const closed = new Promise((done) => service.once('close', done))
      service.kill('SIGTERM')
      await Promise.race([closed, sleep(15_000)])
      if (running(service)) service.kill('SIGKILL')
    }
    await database.drop()
    rmSync(work, { recursive: true, force: true })
  }
}

function interrupted() {
  console.error(`docs:test: ${stop.signal}: stopped; the service and the database are cleaned up`)
  return 128 + (stop.signal === 'SIGINT' ? 2 : 15)
}

async function ready(base, service) {
  const deadline = Date.now() + START_TIMEOUT_MS
  while (Date.now() < deadline && service.exitCode === null && !stop.signal) {
    const status = await fetch(`http://${base}/health/ready`).then(
      (r) => r.status,
      () => 0,
    )
    if (status === 200) return true
    await sleep(250)
  }
  return false
}

function runBash(file, env) {
  return new Promise((done) => {
    // Its own process group: a timeout or a signal ends what the blocks started (curl, the CLI), too.
    const bash = spawn('bash', ['--noprofile', '--norc', file], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    const kill = (signal) => signalChild(bash, signal, true)
    stop.children.add(kill)
    let output = ''
    bash.stdout.on('data', (chunk) => {
      output += chunk
    })
    bash.stderr.on('data', (chunk) => {
      output += chunk
    })
    const timer = setTimeout(() => kill('SIGKILL'), BLOCKS_TIMEOUT_MS)
    bash.on('close', (code, signal) => {
      clearTimeout(timer)
      stop.children.delete(kill)
      done({ code: code ?? signal, output })
    })
  })
}

if (resolve(process.argv[1] ?? '') === fileURLToPath(import.meta.url)) {
  process.chdir(dirname(README))
  process.exit(await main())
}
