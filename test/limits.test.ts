import type { AddressInfo } from 'node:net'
import { connect } from 'node:net'
import t, { type Test } from 'tap'
import type { App } from '../app.js'
import { build, expectProblem, logCapture, PROBLEM_TYPE } from './helper.js'

/**
 * Request limits: slow clients, oversized or malformed headers, long path parameters, big bodies
 * and deep JSON all end in a 4xx problem+json, never a 500, and the service stays healthy.
 */

/** How long a raw client waits for the server before giving up: far longer than any timeout under test. */
const GIVE_UP_MS = 10_000

interface RawAnswer {
  /** Everything the server sent. */
  text: string
  status: number
  headers: Record<string, string>
  body: string
  /** Milliseconds from connect until the server closed the connection (or we gave up). */
  elapsedMs: number
  closedByServer: boolean
}

interface RawRequest {
  head: string
  /** Sent one character at a time, every `everyMs`, after the head. */
  drip?: { text: string; everyMs: number }
  /** Give up (and report closedByServer: false) after this long. */
  giveUpMs?: number
}

/** Talks HTTP/1.1 over a raw socket, as a slow or broken client would. */
function rawRequest(port: number, request: RawRequest): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' })
    const started = Date.now()
    let text = ''
    let dripTimer: NodeJS.Timeout | undefined
    let finished = false
    const finish = (closedByServer: boolean) => {
      if (finished) return
      finished = true
      clearInterval(dripTimer)
      clearTimeout(giveUp)
      socket.destroy()
      const [head = '', body = ''] = text.split('\r\n\r\n', 2)
      const [statusLine = '', ...headerLines] = head.split('\r\n')
      const headers: Record<string, string> = {}
      for (const line of headerLines) {
        const colon = line.indexOf(':')
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      resolve({
        text,
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0),
        headers,
        body,
        elapsedMs: Date.now() - started,
        closedByServer,
      })
    }
    const giveUp = setTimeout(() => finish(false), request.giveUpMs ?? GIVE_UP_MS)
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1')
    })
    // Writing after the server has answered may fail (EPIPE, ECONNRESET): the answer still counts.
    socket.on('error', () => finish(true))
    socket.on('end', () => finish(true))
    socket.on('close', () => finish(true))
    socket.once('connect', () => {
      socket.write(request.head)
      const drip = request.drip
      if (!drip) return
      let i = 0
      dripTimer = setInterval(() => {
        if (i >= drip.text.length || socket.destroyed || !socket.writable) {
          clearInterval(dripTimer)
          return
        }
        socket.write(drip.text.charAt(i++))
      }, drip.everyMs)
    })
  })
}

function assertRawProblem(t: Test, answer: RawAnswer, status: number) {
  t.equal(answer.status, status, `status ${status} (got: ${JSON.stringify(answer.text.slice(0, 120))})`)
  t.match(answer.headers['content-type'] ?? '', PROBLEM_TYPE, 'Content-Type: application/problem+json')
  t.equal(answer.headers.connection, 'close', 'Connection: close')
  let body: Record<string, unknown> = {}
  try {
    body = JSON.parse(answer.body)
  } catch {
    t.fail(`the body is JSON: ${JSON.stringify(answer.body.slice(0, 120))}`)
  }
  t.match(body, { status, title: String, detail: String })
  t.equal(
    Buffer.byteLength(answer.body, 'latin1'),
    Number(answer.headers['content-length']),
    'Content-Length',
  )
  t.ok(answer.closedByServer, 'the server closed the connection')
}

async function listening(t: Test, env: Record<string, string> = {}) {
  const log = logCapture()
  const app = await build(t, { env, logStream: log.stream })
  await app.listen({ port: 0, host: '127.0.0.1' })
  // Runs before build()'s app.close(): a socket left open must not hold the test.
  t.teardown(() => app.server.closeAllConnections())
  const { port } = app.server.address() as AddressInfo
  return { app, port, log }
}

/** No line of the log reports a 500 or an unhandled error. */
function assertNoServerError(t: Test, lines: Record<string, unknown>[]) {
  t.same(
    lines.filter((l) => (typeof l.status === 'number' && l.status >= 500) || l.event === 'request.failed'),
    [],
    'nothing was answered with a 500',
  )
}

const postJson = (app: App, url: string, payload: string) =>
  app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload })

t.test('against a listening server, over raw sockets', async (t) => {
  const { app, port, log } = await listening(t, { REQUEST_TIMEOUT_MS: '1500', HEADERS_TIMEOUT_MS: '1000' })

  t.test('a client sending its body one byte at a time is cut off with 408', async (t) => {
    t.setTimeout(30000)
    const answer = await rawRequest(port, {
      head:
        'POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
        'Content-Length: 100\r\n\r\n',
      drip: { text: `{"username":"slow","password":"${'x'.repeat(100)}`, everyMs: 300 },
    })
    assertRawProblem(t, answer, 408)
    t.ok(answer.elapsedMs >= 1000, `not before REQUEST_TIMEOUT_MS (${answer.elapsedMs} ms)`)
    // The whole body would take the client ~30 s: only a guard against the cut-off never coming.
    t.ok(answer.elapsedMs < GIVE_UP_MS, `long before the client would finish (${answer.elapsedMs} ms)`)
  })

  t.test('a client sending its headers one byte at a time is cut off with 408', async (t) => {
    t.setTimeout(30000)
    const answer = await rawRequest(port, {
      head: 'GET /health/live HTTP/1.1\r\n',
      drip: { text: `Host: localhost\r\nX-Slow: ${'y'.repeat(100)}\r\n\r\n`, everyMs: 200 },
    })
    assertRawProblem(t, answer, 408)
    t.ok(answer.elapsedMs >= 800, `not before HEADERS_TIMEOUT_MS (${answer.elapsedMs} ms)`)
    // The whole head would take the client ~25 s: only a guard against the cut-off never coming.
    t.ok(answer.elapsedMs < GIVE_UP_MS, `long before the client would finish (${answer.elapsedMs} ms)`)
  })

  t.test('an oversized header (20 KB cookie) is 431', async (t) => {
    t.setTimeout(30000)
    const answer = await rawRequest(port, {
      head: `GET /health/live HTTP/1.1\r\nHost: localhost\r\nCookie: a=${'c'.repeat(20 * 1024)}\r\n\r\n`,
    })
    assertRawProblem(t, answer, 431)
    t.match(JSON.parse(answer.body), { title: 'Request Header Fields Too Large' })
  })

  t.test('a malformed header line is 400', async (t) => {
    t.setTimeout(30000)
    const answer = await rawRequest(port, { head: 'GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n' })
    assertRawProblem(t, answer, 400)
    t.match(JSON.parse(answer.body), { title: 'Bad Request' })
  })

  /** A problem answered by the app itself (its hooks ran): problem+json with the security headers. */
  const assertHardenedProblem = (t: Test, answer: RawAnswer, status: number) => {
    t.equal(answer.status, status, `status ${status} (got: ${JSON.stringify(answer.text.slice(0, 120))})`)
    t.match(answer.headers['content-type'] ?? '', PROBLEM_TYPE)
    t.match(answer.headers['content-security-policy'] ?? '', /default-src 'none'/, 'security headers')
    t.equal(answer.headers['x-content-type-options'], 'nosniff')
    t.match(answer.headers['x-request-id'] ?? '', /\S/)
  }

  t.test('regression (review 11): two Host headers are 400 (RFC 9112 §3.2)', async (t) => {
    t.setTimeout(30000)
    const answer = await rawRequest(port, {
      head: 'GET /health/live HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\nConnection: close\r\n\r\n',
    })
    assertHardenedProblem(t, answer, 400)
  })

  t.test(
    'regression (review 11): a missing Host and an unknown Expect are problems with headers',
    async (t) => {
      t.setTimeout(30000)
      const noHost = await rawRequest(port, {
        head: 'GET /health/live HTTP/1.1\r\nConnection: close\r\n\r\n',
      })
      assertHardenedProblem(t, noHost, 400)
      const expect = await rawRequest(port, {
        head: 'GET /health/live HTTP/1.1\r\nHost: localhost\r\nExpect: 200-ok\r\nConnection: close\r\n\r\n',
      })
      assertHardenedProblem(t, expect, 417)
      const http10 = await rawRequest(port, { head: 'GET /health/live HTTP/1.0\r\n\r\n' })
      t.match(http10.text, /^HTTP\/1\.1 200/, 'HTTP/1.0 needs no Host')
    },
  )

  t.test('the server is still healthy afterwards, and nothing was a 500', async (t) => {
    t.setTimeout(30000)
    const res = await fetch(`http://127.0.0.1:${port}/health/live`)
    t.equal(res.status, 200)
    t.same(await res.json(), { status: 'ok' })
    const injected = await app.inject('/health/live')
    t.equal(injected.statusCode, 200)
    assertNoServerError(t, log.lines)
  })
})

t.test('a path parameter longer than MAX_PARAM_LENGTH is a 4xx problem, never a 500', async (t) => {
  t.setTimeout(30000)
  const app = await build(t)
  const atLimit = await app.inject(`/api/comments/${'a'.repeat(100)}`)
  expectProblem(
    t,
    atLimit,
    400,
    'urn:bulwark:problem:validation-error',
    'at the limit, the route itself validates the id',
  )

  const res = await app.inject(`/api/comments/${'a'.repeat(101)}`)
  // Fastify answers FST_ERR_MAX_PARAM_LENGTH with 414 URI Too Long.
  const body = expectProblem(t, res, 414, undefined, 'over the limit: 414 URI Too Long')
  t.equal(body.title, 'URI Too Long')
  t.ok(res.headers['x-request-id'], 'with a request id, like every problem')
  t.equal(res.headers['x-content-type-options'], 'nosniff', 'with the security headers')
})

t.test('regression (review 12): router refusals are logged like every other request', async (t) => {
  const capture = logCapture()
  const app = await build(t, { logStream: capture.stream })
  capture.lines.length = 0
  const long = await app.inject(`/api/comments/${'a'.repeat(101)}`)
  const badEscape = await app.inject('/api/comments/%E0%A4%A')
  t.same([long.statusCode, badEscape.statusCode], [414, 400])
  const lines = capture.lines.filter((l) => l.event === 'request')
  t.same(
    lines.map((l) => [
      l.status,
      l.requestId === long.headers['x-request-id'] || l.requestId === badEscape.headers['x-request-id'],
    ]),
    [
      [414, true],
      [400, true],
    ],
    'one line each, with its request id',
  )
})

t.test('a malformed percent-encoding in the path is a 400 problem, never a 500', async (t) => {
  t.setTimeout(30000)
  const app = await build(t)
  const res = await app.inject('/api/comments/%E0%A4%A')
  const body = expectProblem(t, res, 400, undefined, 'a malformed percent-encoding')
  t.equal(body.title, 'Bad Request')
})

t.test('a body over BODY_LIMIT_BYTES is a 413 problem', async (t) => {
  t.setTimeout(30000)
  const app = await build(t, { env: { BODY_LIMIT_BYTES: '2048' } })
  const base = { username: 'biggy', email: 'biggy@example.com', password: '' }
  const padding = 3000 - JSON.stringify(base).length
  const payload = JSON.stringify({ ...base, password: `A1${'x'.repeat(padding - 2)}` })
  t.equal(Buffer.byteLength(payload), 3000, 'a 3000-byte body')

  const res = await postJson(app, '/api/auth/register', payload)
  const body = expectProblem(t, res, 413, undefined, 'a 3000-byte body')
  t.match(body, { title: 'Payload Too Large', instance: '/api/auth/register' })

  const small = await postJson(app, '/api/auth/register', '{"username":"x"}')
  t.equal(small.statusCode, 400, 'a body under the limit reaches validation')
})

t.test('deeply nested JSON is a 400 problem, never a 500', async (t) => {
  t.setTimeout(30000)
  const log = logCapture()
  const app = await build(t, { logStream: log.stream })
  const bodies = {
    'balanced arrays': `${'['.repeat(10000)}${']'.repeat(10000)}`,
    'unclosed arrays': '['.repeat(10000),
    'nested objects': `${'{"a":'.repeat(10000)}1${'}'.repeat(10000)}`,
    'near the body limit': `${'['.repeat(32000)}${']'.repeat(32000)}`,
  }
  for (const [name, payload] of Object.entries(bodies)) {
    const res = await postJson(app, '/api/auth/login', payload)
    const body = expectProblem(t, res, 400, undefined, name)
    t.equal(body.instance, '/api/auth/login', `${name}: instance`)
  }
  t.equal((await app.inject('/health/live')).statusCode, 200, 'still healthy')
  assertNoServerError(t, log.lines)
})
