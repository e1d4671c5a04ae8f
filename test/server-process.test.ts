// server.ts and cli.ts as real processes (split from server.test.ts: each starts Node with the TypeScript
// loader, and together they came close to the per-file timeout on a loaded machine).
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import { serverProcessEnv, testDatabaseUrl } from './helper.js'

const root = dirname(dirname(fileURLToPath(import.meta.url)))

interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/**
 * Runs server.ts (or another entry point) in a real Node process with tap's TypeScript loader;
 * `node` replaces the command line before the entry point.
 */
function runServer(
  t: Test,
  env: NodeJS.ProcessEnv,
  cwd = root,
  entry = ['server.ts'],
  node = [process.execPath, ...process.execArgv],
) {
  const [script = 'server.ts', ...args] = entry
  const [command = process.execPath, ...before] = node
  const child: ChildProcess = spawn(command, [...before, join(root, script), ...args], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (chunk) => {
    stdout += chunk
  })
  child.stderr?.on('data', (chunk) => {
    stderr += chunk
  })
  const done = new Promise<Run>((resolveRun) =>
    child.once('close', (code, signal) => resolveRun({ code, signal, stdout, stderr })),
  )
  const events = () =>
    stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
  return { child, done, events }
}

t.test('server.ts as a process: starts, is ready, and SIGTERM shuts it down with 0', async (t) => {
  // NODE_ENV=test: a developer's .env in the repository root is not read (test/lib/dotenv.test.ts).
  const env = await serverProcessEnv()
  const server = runServer(t, env)
  const started = await new Promise<Record<string, unknown>>((resolveStarted, reject) => {
    const look = () => {
      const event = server.events().find((e) => e.event === 'server.started')
      if (event) resolveStarted(event)
    }
    server.child.stdout?.on('data', () => setImmediate(look))
    void server.done.then((run) =>
      reject(new Error(`server exited (${run.code}) before starting: ${run.stderr}`)),
    )
  })
  t.match(started, { level: 'info', url: /^http:\/\/127\.0\.0\.1:\d+$/ })
  const url = started.url as string

  // Load shedding samples the event loop, and boot on a busy machine can stall it past 1 s: the
  // first answers may be a 503 `overloaded` until the next sample. Wait past those, never other answers.
  let ready = await fetch(`${url}/health/ready`)
  for (let i = 0; i < 20 && ready.status === 503; i++) {
    t.match(
      await ready.json(),
      { type: 'urn:bulwark:problem:overloaded' },
      'only load shedding is waited out',
    )
    await new Promise((resolve) => setTimeout(resolve, 250))
    ready = await fetch(`${url}/health/ready`)
  }
  t.equal(ready.status, 200)
  t.same(await ready.json(), { status: 'ok' })

  server.child.kill('SIGTERM')
  const run = await server.done
  t.equal(run.code, 0, 'exit code 0')
  t.equal(run.signal, null, 'exited by itself, not killed by the signal')
  t.match(
    server.events().filter((e) => /listening/i.test(String(e.msg))),
    [{ event: 'server.started', url, msg: `Bulwark listening on ${url}` }],
    "one listening line: ours, with its event (Fastify's own is replaced, not repeated)",
  )
  t.match(
    server.events().filter((e) => e.event === 'server.shutdown'),
    [{ signal: 'SIGTERM' }],
    'shutdown is logged',
  )
  t.equal(run.stderr, '', 'nothing on stderr')
})

t.test('server.ts: a SIGTERM received as starting hands over to shutdown is not lost', async (t) => {
  // Regression: the start handler came off before the shutdown handler went on; with no listener
  // left Node closes its signal watcher, and a SIGTERM received but not yet dispatched was dropped:
  // the service ran on until SIGKILL. The preload sends one at that exact moment.
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-handover-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const preload = join(dir, 'signal-at-handover.mjs')
  writeFileSync(
    preload,
    `const remove = process.removeListener
let sent = false
process.removeListener = process.off = function (name, listener) {
  if (name === 'SIGTERM' && !sent && listener.name === 'stopWhileStarting') {
    sent = true
    process.stderr.write('signal sent at the handover\\n')
    process.kill(process.pid, 'SIGTERM')
  }
  return remove.call(this, name, listener)
}
`,
  )
  const env = await serverProcessEnv()
  // NODE_OPTIONS set by env(1), past tap's process-info hook: that hook's signal-exit listener would
  // keep Node's signal watcher open and hide the loss.
  const execArgv = process.execArgv.filter((a) => !a.includes('@tapjs/processinfo'))
  const server = runServer(
    t,
    env,
    root,
    ['server.ts'],
    ['/usr/bin/env', `NODE_OPTIONS=--import=${pathToFileURL(preload).href}`, process.execPath, ...execArgv],
  )
  const run = await Promise.race([server.done, sleep(20_000).then(() => null)])
  t.match(run?.stderr, /signal sent at the handover/, 'the preload did its part')
  t.ok(run, 'the process ended by itself')
  t.equal(run?.code, 0, 'a graceful shutdown: exit code 0')
  t.match(
    server.events().filter((e) => e.event === 'server.shutdown'),
    [{ signal: 'SIGTERM' }],
    'the signal was handled by the shutdown handler',
  )
})

t.test('server.ts in production without JWT_SECRET exits 1 with one line', async (t) => {
  // An empty working directory: no .env can supply the missing secret.
  const cwd = mkdtempSync(join(tmpdir(), 'bulwark-server-'))
  t.teardown(() => rmSync(cwd, { recursive: true, force: true }))
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TS_NODE_PROJECT: join(root, 'tsconfig.json'),
    NODE_ENV: 'production',
    DATABASE_URL: await testDatabaseUrl(),
  }
  delete env.JWT_SECRET
  const run = await runServer(t, env, cwd).done
  t.equal(run.code, 1, 'exit code 1')
  t.match(run.stderr, /^bulwark: invalid configuration: JWT_SECRET is required when NODE_ENV=production\n$/)
  t.equal(run.stderr.trimEnd().split('\n').length, 1, 'exactly one line')
  t.notMatch(run.stderr, '    at ', 'no stack trace')
  t.equal(run.stdout, '', 'nothing is logged before configuration is valid')
})

/** A database that accepts connections and never answers: whatever waits on it waits. */
async function silentDatabase(t: Test) {
  const accepted: Socket[] = []
  const silent = createNetServer((socket) => {
    accepted.push(socket)
  })
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  t.teardown(() => {
    for (const socket of accepted) socket.destroy()
    silent.close()
  })
  const port = (silent.address() as AddressInfo).port
  return { url: `postgres://postgres@127.0.0.1:${port}/test`, connected: once(silent, 'connection') }
}

for (const entry of [['server.ts'], ['cli.ts', 'migrate']]) {
  t.test(
    `${entry.join(' ')} stopped while waiting for the database exits at once (PID 1 ignores unhandled signals)`,
    async (t) => {
      const db = await silentDatabase(t)
      const run = runServer(
        t,
        {
          ...process.env,
          NODE_ENV: 'test',
          LOG_LEVEL: 'info',
          DATABASE_URL: db.url,
          DATABASE_CONNECT_TIMEOUT_SECONDS: '60',
        },
        root,
        entry,
      )
      await db.connected
      const signalledAt = Date.now()
      run.child.kill('SIGTERM')
      const result = await run.done
      t.equal(result.code, 143, 'exit 128 + SIGTERM, not a success')
      t.equal(result.signal, null, 'exited by itself, not by the default action')
      t.ok(Date.now() - signalledAt < 10_000, 'long before the 60 s connect timeout')
      if (entry[0] === 'server.ts') {
        t.match(
          run.events().filter((e) => e.event === 'server.start_interrupted'),
          [{ level: 'warn', signal: 'SIGTERM' }],
        )
      } else {
        t.match(result.stderr, /bulwark: SIGTERM: stopped/)
      }
    },
  )
}
