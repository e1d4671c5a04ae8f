import { Agent, get as httpGet } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { App } from '../app.js'
import { installGracefulShutdown, type ShutdownOptions, startedLines } from '../server.js'
import { build, logCapture } from './helper.js'

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
