import { type ChildProcess, spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import postgres from 'postgres'
import t, { type Test } from 'tap'
import {
  type EmbeddedDatabase,
  startEmbeddedPostgres,
  stopStalePostmaster,
} from '../../lib/embedded-postgres.js'
import { createLogger } from '../../lib/logger.js'
import { logCapture } from '../helper.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const moduleUrl = (path: string) => pathToFileURL(join(root, path)).href

/** A fresh directory the `postgres` system user can traverse, removed when the test ends. */
function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-embedded-'))
  chmodSync(dir, 0o755)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Alive and not a zombie (an exited postmaster reparented to an init that does not reap it). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return true
  }
}

function readPostmasterPid(dataDir: string): number {
  return Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
}

/** Stops every database the test started, and any postmaster still running on its data dir. */
function cleanupAfter(t: Test, dataDir: string) {
  const started: EmbeddedDatabase[] = []
  t.teardown(async () => {
    for (const db of started.reverse()) await db.stop().catch(() => {})
    if (!existsSync(join(dataDir, 'postmaster.pid'))) return
    const pid = readPostmasterPid(dataDir)
    if (!isRunning(pid)) return
    process.kill(pid, 'SIGINT')
    for (let i = 0; i < 100 && isRunning(pid); i++) await sleep(100)
    if (isRunning(pid)) process.kill(pid, 'SIGKILL')
  })
  return (db: EmbeddedDatabase) => {
    started.push(db)
    return db
  }
}

async function query<T extends readonly object[]>(
  url: string,
  run: (sql: postgres.Sql) => Promise<T>,
): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10 })
  try {
    return await run(sql)
  } finally {
    await sql.end({ timeout: 5 })
  }
}

t.test(
  'data persists across stop and start; only the first start initialises',
  { timeout: 120_000 },
  async (t) => {
    const dir = tempDir(t)
    const dataDir = join(dir, 'pg')
    const track = cleanupAfter(t, dataDir)
    const log = logCapture()
    const logger = createLogger({ LOG_LEVEL: 'info' }, log.stream)
    const startedEvents = () => log.lines.filter((l) => l.event === 'db.embedded.started')
    const passwordFile = join(dir, 'pg.password')
    const announced: string[] = []
    const announce = (line: string) => announced.push(line)
    const first = track(await startEmbeddedPostgres({ dataDir, logger, announce }))
    let password = ''

    await t.test('the first start initialises the cluster, with a private password beside it', async (t) => {
      t.equal(first.dataDir, dataDir)
      t.ok(existsSync(join(dataDir, 'PG_VERSION')), 'initdb created the cluster')
      t.match(startedEvents(), [{ dataDir, port: first.port, initialised: true }])
      t.same(announced, [`initialising PostgreSQL in ${dataDir} (first run only)…`], 'said before initdb')

      t.ok(existsSync(passwordFile), 'the password is kept beside the data directory')
      t.equal(statSync(passwordFile).mode & 0o777, 0o600, 'password file is private')
      password = readFileSync(passwordFile, 'utf8').trim()
      t.ok(password.length >= 24)
      const url = new URL(first.url)
      t.equal(url.hostname, '127.0.0.1')
      t.equal(Number(url.port), first.port)
      t.equal(url.pathname, '/bulwark')
      t.equal(decodeURIComponent(url.password), password)
    })

    await t.test('data can be written; a wrong password is refused (scram-sha-256)', async (t) => {
      await query(first.url, async (sql) => {
        await sql`create table kept (id integer primary key, note text not null)`
        return sql`insert into kept (id, note) values (1, 'survives a restart')`
      })
      const wrong = new URL(first.url)
      wrong.password = 'not-the-password'
      await t.rejects(
        query(wrong.toString(), (sql) => sql`select 1`),
        { code: '28P01' },
        'a wrong password is refused (scram-sha-256)',
      )
    })

    await t.test('stop() shuts PostgreSQL down cleanly', async (t) => {
      await first.stop()
      t.notOk(existsSync(join(dataDir, 'postmaster.pid')), 'stop() shuts PostgreSQL down cleanly')
      t.match(log.lines.at(-1), { event: 'db.embedded.stopped', dataDir })
    })

    await t.test('a second start does not initdb, reuses the password and keeps the data', async (t) => {
      const second = track(await startEmbeddedPostgres({ dataDir, logger, announce }))
      t.equal(announced.length, 1, 'nothing to announce: no initdb')
      t.equal(startedEvents().length, 2)
      t.match(
        startedEvents()[1],
        { dataDir, port: second.port, initialised: false },
        'second start does not initdb',
      )
      t.equal(readFileSync(passwordFile, 'utf8').trim(), password, 'password file is reused, not regenerated')
      t.equal(decodeURIComponent(new URL(second.url).password), password)

      const rows = await query(second.url, (sql) => sql`select id, note from kept order by id`)
      t.same(
        rows.map((r) => ({ ...r })),
        [{ id: 1, note: 'survives a restart' }],
        'the row written before the restart is still there',
      )
      await second.stop()
    })
  },
)

t.test(
  'a postmaster left by a SIGKILLed process is stopped before starting again',
  { timeout: 120_000 },
  async (t) => {
    const dir = tempDir(t)
    const dataDir = join(dir, 'pg')
    const track = cleanupAfter(t, dataDir)

    // A separate Node process (with tap's TypeScript loader) starts the database and then hangs.
    const script = `
    import { startEmbeddedPostgres } from ${JSON.stringify(moduleUrl('lib/embedded-postgres.ts'))}
    import { createLogger } from ${JSON.stringify(moduleUrl('lib/logger.ts'))}
    const db = await startEmbeddedPostgres({
      dataDir: process.env.BULWARK_TEST_DATA_DIR,
      logger: createLogger({ LOG_LEVEL: 'silent' }),
    })
    process.stdout.write(JSON.stringify({ url: db.url }) + '\\n')
    setInterval(() => {}, 1 << 30)
  `
    const child: ChildProcess = spawn(
      process.execPath,
      [...process.execArgv, '--input-type=module', '-e', script],
      {
        cwd: root,
        env: { ...process.env, BULWARK_TEST_DATA_DIR: dataDir },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    const exited = new Promise<NodeJS.Signals | null>((resolveExit) =>
      child.once('exit', (_c, s) => resolveExit(s)),
    )
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    let stderr = ''
    child.stderr?.on('data', (chunk) => {
      stderr += chunk
    })
    const childUrl = await new Promise<string>((resolveUrl, reject) => {
      let out = ''
      child.stdout?.on('data', (chunk) => {
        out += chunk
        const line = out.split('\n').find((l) => l.startsWith('{'))
        if (line) resolveUrl((JSON.parse(line) as { url: string }).url)
      })
      child.once('exit', (code) => reject(new Error(`child exited (${code}) before starting: ${stderr}`)))
    })

    const stalePid = readPostmasterPid(dataDir)

    await t.test(
      'while its owner lives, another process shares the postmaster instead of stopping it',
      async (t) => {
        t.ok(isRunning(stalePid), 'the child started a postmaster')
        await query(childUrl, (sql) => sql`create table before_crash (id integer)`)

        // Regression: while its owner lives (a running `npm start`), a second process (the CLI) must
        // share the postmaster, not stop it as stale.
        const attachLog = logCapture()
        const attached = await startEmbeddedPostgres({
          dataDir,
          logger: createLogger({ LOG_LEVEL: 'info' }, attachLog.stream),
        })
        t.equal(attached.url, childUrl, 'the same server, the same credentials')
        t.match(attachLog.lines, [{ event: 'db.embedded.attached' }])
        t.equal(readPostmasterPid(dataDir), stalePid, 'the running postmaster was left alone')
        await attached.stop()
        t.ok(isRunning(stalePid), "stopping the attached handle does not stop the owner's database")
      },
    )

    await t.test('the postmaster outlives the SIGKILLed process that started it', async (t) => {
      child.kill('SIGKILL')
      t.equal(await exited, 'SIGKILL')
      t.ok(isRunning(stalePid), 'the postmaster outlives the SIGKILLed process that started it')
      const [alive] = await query(childUrl, (sql) => sql`select 1 as ok`)
      t.equal(alive?.ok, 1, 'and still serves connections')
    })

    await t.test('the next start stops the stale postmaster, reports it and keeps its data', async (t) => {
      const log = logCapture()
      const db = track(
        await startEmbeddedPostgres({ dataDir, logger: createLogger({ LOG_LEVEL: 'info' }, log.stream) }),
      )
      t.match(
        log.lines.filter((l) => l.event === 'db.embedded.stale'),
        [{ level: 'warn', pid: stalePid }],
        'the stale postmaster is reported',
      )
      t.notOk(isRunning(stalePid), 'the stale postmaster is gone')
      const newPid = readPostmasterPid(dataDir)
      t.not(newPid, stalePid, 'a new postmaster owns the data directory')
      t.ok(isRunning(newPid))
      t.match(
        log.lines.filter((l) => l.event === 'db.embedded.started'),
        [{ initialised: false }],
      )

      const tables = await query(
        db.url,
        (sql) => sql`select count(*)::int as n from pg_tables where tablename = 'before_crash'`,
      )
      t.equal(tables[0]?.n, 1, 'data written through the stale postmaster is kept')
      await db.stop()
    })
  },
)

t.test('stopStalePostmaster leaves alone what is not a stale postmaster', async (t) => {
  const dir = tempDir(t)
  const log = logCapture()
  const logger = createLogger({ LOG_LEVEL: 'info' }, log.stream)

  t.equal(await stopStalePostmaster(join(dir, 'missing'), logger), false, 'no data directory')
  t.equal(await stopStalePostmaster(dir, logger), false, 'no postmaster.pid')

  const dead = spawn(process.execPath, ['-e', ''])
  await new Promise((r) => dead.once('exit', r))
  writeFileSync(join(dir, 'postmaster.pid'), `${dead.pid}\n${dir}\n`)
  t.equal(await stopStalePostmaster(dir, logger), false, 'postmaster.pid of an exited process')

  writeFileSync(join(dir, 'postmaster.pid'), 'garbage\n')
  t.equal(await stopStalePostmaster(dir, logger), false, 'unreadable postmaster.pid')

  const sleeper = spawn('sleep', ['30'])
  t.teardown(() => {
    sleeper.kill('SIGKILL')
  })
  await new Promise((r) => sleeper.once('spawn', r))
  writeFileSync(join(dir, 'postmaster.pid'), `${sleeper.pid}\n${dir}\n`)
  t.equal(await stopStalePostmaster(dir, logger), false, 'a live process that is not PostgreSQL')
  t.ok(sleeper.pid !== undefined && isRunning(sleeper.pid), 'and it is not signalled')

  // Regression (pid reuse): a process that merely mentions "postgres", or is a postgres for another
  // data directory, is not ours to stop.
  const lookalike = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)', 'postgres', '-D', dir])
  t.teardown(() => {
    lookalike.kill('SIGKILL')
  })
  await new Promise((r) => lookalike.once('spawn', r))
  writeFileSync(join(dir, 'postmaster.pid'), `${lookalike.pid}\n${dir}\n`)
  t.equal(await stopStalePostmaster(dir, logger), false, 'a process that only mentions postgres -D <dir>')
  t.ok(lookalike.pid !== undefined && isRunning(lookalike.pid), 'and it is not signalled')

  t.same(
    log.lines.filter((l) => l.event === 'db.embedded.stale'),
    [],
    'nothing is reported as stale',
  )
})
