import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { Agent, get as httpGet } from 'node:http'
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import type { App } from '../app.js'
import { installGracefulShutdown, type ShutdownOptions, startedLines } from '../server.js'
import { build, logCapture, serverProcessEnv, testDatabaseUrl } from './helper.js'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
const SIGNAL = 'SIGUSR2' // not one tap listens to

/**
 * Builds the app with a slow route, listening on a free port. `inHandler()` resolves once a request
 * is inside the route (the first one): tests signal then, so the request is in flight whatever the machine's load.
 */
async function slowApp(t: Test, delayMs: number) {
  const log = logCapture()
  let entered!: () => void
  const reached = new Promise<void>((r) => {
    entered = r
  })
  const inHandler = () => reached
  const app = await build(t, {
    logStream: log.stream,
    setup: (app) => {
      app.get('/test/slow', async () => {
        entered()
        await sleep(delayMs)
        return { done: true }
      })
    },
  })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  // Runs before build()'s app.close(): a connection left open must not hold the test for 72 s.
  t.teardown(() => app.server.closeAllConnections())
  return { app, url, log, inHandler }
}

/** Installs the shutdown handler on SIGUSR2, recording what it does. */
function install(t: Test, app: App, options: Partial<ShutdownOptions> = {}) {
  const calls: string[] = []
  let exited!: (code: number) => void
  const exit = new Promise<number>((r) => {
    exited = r
  })
  const before = process.listenerCount(SIGNAL)
  const remove = installGracefulShutdown(app, {
    timeoutMs: 5000,
    signals: [SIGNAL],
    cleanup: async () => {
      calls.push('cleanup')
    },
    exit: (code) => {
      calls.push(`exit:${code}`)
      exited(code)
    },
    ...options,
  })
  t.teardown(remove)
  return { calls, exit, remove, before }
}

interface Reply {
  status: number
  body: unknown
}

/** GET over a keep-alive connection from fetch's pool, as a gateway sends requests. */
const keepAliveGet = (url: string): Promise<Reply> =>
  fetch(url).then(async (res) => ({ status: res.status, body: await res.json() }))

/** GET over a connection of its own that the client closes after the response. */
const oneShotGet = (url: string): Promise<Reply> =>
  new Promise((resolveReply, reject) => {
    const req = httpGet(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        text += chunk
      })
      res.on('end', () => resolveReply({ status: res.statusCode ?? 0, body: JSON.parse(text) }))
      res.on('error', reject)
    })
    req.on('error', reject)
  })

/** GET through a keep-alive agent: whether the socket was reused, and the Connection header answered. */
const agentGet = (agent: Agent, url: string) =>
  new Promise<Reply & { connection: string | undefined; reused: boolean }>((resolveReply, reject) => {
    const req = httpGet(url, { agent }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        text += chunk
      })
      res.on('end', () =>
        resolveReply({
          status: res.statusCode ?? 0,
          body: JSON.parse(text),
          connection: res.headers.connection,
          reused: req.reusedSocket,
        }),
      )
      res.on('error', reject)
    })
    req.on('error', reject)
  })

const newConnectionRefused = { cause: { code: 'ECONNREFUSED' } }

/** Whether a promise has settled yet: orders events without timing them. */
function settled(promise: Promise<unknown>): () => boolean {
  let done = false
  promise.then(
    () => {
      done = true
    },
    () => {
      done = true
    },
  )
  return () => done
}

t.test('installGracefulShutdown', async (t) => {
  t.test('drains the in-flight request, refuses new connections, cleans up, exits 0', async (t) => {
    const { app, url, log, inHandler } = await slowApp(t, 500)
    const { calls, exit, remove, before } = install(t, app)
    t.equal(process.listenerCount(SIGNAL), before + 1, 'listens to the given signal')

    const inFlight = oneShotGet(`${url}/test/slow`)
    await inHandler()
    process.emit(SIGNAL, SIGNAL)

    t.same(await inFlight, { status: 200, body: { done: true } }, 'the in-flight request completes')
    t.equal(await exit, 0, 'exit code 0')
    t.same(calls, ['cleanup', 'exit:0'], 'cleanup runs once, before exit')
    await t.rejects(fetch(`${url}/health/live`), newConnectionRefused, 'new connections are refused')
    t.match(
      log.lines.filter((l) => typeof l.event === 'string' && l.event.startsWith('server.')),
      [{ event: 'server.shutdown', signal: SIGNAL, level: 'info' }],
    )
    t.equal(app.lifecycle.draining, true)

    remove()
    t.equal(process.listenerCount(SIGNAL), before, 'the returned function removes the listener')
  })

  t.test('a keep-alive client (fetch, like a gateway) does not hold shutdown open', async (t) => {
    const { app, url, inHandler } = await slowApp(t, 500)
    const { calls, exit } = install(t, app, { timeoutMs: 2000 })

    const inFlight = keepAliveGet(`${url}/test/slow`)
    await inHandler()
    process.emit(SIGNAL, SIGNAL)

    t.same(await inFlight, { status: 200, body: { done: true } }, 'the in-flight request completes')
    t.equal(await exit, 0, 'exit code 0, before timeoutMs')
    t.same(calls, ['cleanup', 'exit:0'])
    await t.rejects(
      fetch(`${url}/health/live`),
      newConnectionRefused,
      'the pooled connection was closed and a new one is refused',
    )
  })

  t.test('a shutdown that outlasts timeoutMs exits 1', async (t) => {
    const { app, url, log, inHandler } = await slowApp(t, 3000)
    const { calls, exit } = install(t, app, { timeoutMs: 300 })

    const inFlight = oneShotGet(`${url}/test/slow`)
    const requestDone = settled(inFlight)
    await inHandler()
    const signalledAt = Date.now()
    process.emit(SIGNAL, SIGNAL)

    t.equal(await exit, 1, 'exit code 1')
    const elapsed = Date.now() - signalledAt
    t.ok(elapsed >= 250, `exit not before timeoutMs (${elapsed} ms)`)
    t.notOk(requestDone(), 'exit follows timeoutMs, not the request: the request is still in flight')
    t.same(calls, ['cleanup', 'exit:1'], 'cleanup still runs')
    t.match(
      log.lines.filter((l) => l.event === 'server.shutdown.timeout'),
      [{ level: 'error', timeoutMs: 300 }],
    )
    // The request still completes and close() then resolves, but exit is not called a second time.
    t.same(await inFlight, { status: 200, body: { done: true } })
    await sleep(100)
    t.same(calls, ['cleanup', 'exit:1'], 'exit is called only once')
  })

  t.test('regression: a hung cleanup cannot keep the process alive', async (t) => {
    const { app } = await slowApp(t, 10)
    const { exit } = install(t, app, { timeoutMs: 200, cleanup: () => new Promise<void>(() => {}) })
    // Our timers are unref'd, as in the service; keep this test process alive as a hung cleanup would.
    const alive = setInterval(() => {}, 1000)
    t.teardown(() => clearInterval(alive))
    const signalledAt = Date.now()
    process.emit(SIGNAL, SIGNAL)
    t.equal(await exit, 1, 'the timer still forces exit 1')
    t.ok(Date.now() - signalledAt < 6000, 'within timeoutMs plus the bounded cleanup wait')
  })

  t.test('delayMs: not ready but still serving new connections, then closes and exits 0', async (t) => {
    const { app, url, log } = await slowApp(t, 10)
    const { calls, exit } = install(t, app, { delayMs: 1500 })
    const exited = settled(exit)

    process.emit(SIGNAL, SIGNAL)
    // Both on connections opened after the signal: the listener is still open during the delay.
    const ready = await oneShotGet(`${url}/health/ready`)
    t.equal(ready.status, 503, 'readiness answers 503 at once')
    t.match(ready.body, { type: /not-ready$/ })
    t.same(
      await oneShotGet(`${url}/test/slow`),
      { status: 200, body: { done: true } },
      'requests still served',
    )
    t.notOk(exited(), 'has not closed yet')
    t.same(calls, [], 'no cleanup during the delay')

    t.equal(await exit, 0, 'exit code 0 after the delay')
    t.same(calls, ['cleanup', 'exit:0'])
    await t.rejects(fetch(`${url}/health/live`), newConnectionRefused, 'then new connections are refused')
    t.match(
      log.lines.filter((l) => l.event === 'server.shutdown'),
      [{ level: 'info', signal: SIGNAL, delayMs: 1500 }],
    )
  })

  t.test(
    'closeListenerFirst: new connections refused at once, an open one served through the delay',
    async (t) => {
      const { app, url, log } = await slowApp(t, 10)
      const { calls, exit } = install(t, app, { delayMs: 1500, closeListenerFirst: true })
      const exited = settled(exit)
      // A gateway's pooled keep-alive connection, opened before the signal.
      const agent = new Agent({ keepAlive: true, maxSockets: 1 })
      t.teardown(() => agent.destroy())
      const first = await agentGet(agent, `${url}/test/slow`)
      t.equal(first.connection, 'keep-alive', 'the connection stays open before the signal')

      process.emit(SIGNAL, SIGNAL)
      await t.rejects(
        oneShotGet(`${url}/health/live`),
        { code: 'ECONNREFUSED' },
        'a new connection is refused',
      )
      const during = await agentGet(agent, `${url}/test/slow`)
      t.same(
        [during.status, during.body, during.reused],
        [200, { done: true }, true],
        'the open connection is still served',
      )
      t.equal(during.connection, 'close', 'and told to close after the response')
      t.notOk(exited(), 'still within the delay')

      t.equal(await exit, 0)
      t.same(calls, ['cleanup', 'exit:0'])
      t.match(
        log.lines.filter((l) => l.event === 'server.shutdown'),
        [{ delayMs: 1500, closeListenerFirst: true }],
      )
    },
  )

  t.test('a second signal during the delay exits 1 at once and never closes twice', async (t) => {
    const { app } = await slowApp(t, 10)
    const { calls, exit } = install(t, app, { delayMs: 1000 })
    process.emit(SIGNAL, SIGNAL)
    await sleep(50)
    process.emit(SIGNAL, SIGNAL)
    t.equal(await exit, 1)
    await sleep(1200)
    t.same(calls, ['cleanup', 'exit:1'], 'the first signal does not go on to close after its delay')
  })

  t.test('a second signal during shutdown exits 1 at once', async (t) => {
    const { app, url, log, inHandler } = await slowApp(t, 1500)
    const { calls, exit } = install(t, app, { timeoutMs: 10_000 })

    const inFlight = oneShotGet(`${url}/test/slow`)
    const requestDone = settled(inFlight)
    await inHandler()
    process.emit(SIGNAL, SIGNAL)
    await sleep(50)
    process.emit(SIGNAL, SIGNAL)

    t.equal(await exit, 1)
    t.notOk(requestDone(), 'does not wait for the in-flight request')
    t.match(
      log.lines.filter((l) => l.event === 'server.shutdown.forced'),
      [{ level: 'warn', signal: SIGNAL }],
    )
    await inFlight
    await sleep(100)
    t.same(calls, ['cleanup', 'exit:1'], 'cleanup and exit happen once')
  })
})

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

t.test('one server.started line on every host, whatever number of addresses it binds', async (t) => {
  // Regression: on 0.0.0.0 Fastify calls the resolver once per interface (and twice for localhost):
  // each line said server.started, so a log alert on starts counted one start as several.
  for (const host of ['0.0.0.0', 'localhost', '127.0.0.1']) {
    const log = logCapture()
    const app = await build(t, { logStream: log.stream })
    const address = await app.listen({ host, port: 0, listenTextResolver: startedLines() })
    await app.close()
    const listening = log.lines.filter((l) => /listening/i.test(String(l.msg)))
    t.match(
      listening[0],
      { event: 'server.started', url: address, msg: `Bulwark listening on ${address}` },
      host,
    )
    t.equal(listening.filter((l) => l.event === 'server.started').length, 1, `${host}: one start`)
    t.ok(
      listening
        .slice(1)
        .every((l) => l.event === 'server.listening' && /^Bulwark also listening on /.test(String(l.msg))),
      `${host}: any other address on its own line, with its own event`,
    )
  }
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
