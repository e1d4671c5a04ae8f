import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { hasSubscribers, tracingChannel } from 'node:diagnostics_channel'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { ConfigError, loadConfig } from '../../lib/config.js'
import { loggerOptions } from '../../lib/logger.js'
import { activeTracing, startTracing, tracingProtocol } from '../../lib/tracing.js'
import { build, serverProcessEnv } from '../helper.js'

/** Tracing's switch, what "off" leaves untouched, and the real start path with it on (in a child process). */

const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))))
const settings = (env: Record<string, string>) => loadConfig({ NODE_ENV: 'test', ...env })

t.test('off by default; an OTLP endpoint turns it on unless disabled', async (t) => {
  t.equal(tracingProtocol(settings({})), null, 'off with no endpoint')
  const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }
  t.equal(tracingProtocol(settings(endpoint)), 'http/protobuf', "the specification's default protocol")
  t.equal(
    tracingProtocol(settings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://collector/v1/traces' })),
    'http/protobuf',
    'the traces endpoint alone turns it on',
  )
  t.equal(tracingProtocol(settings({ ...endpoint, OTEL_SDK_DISABLED: 'true' })), null, 'OTEL_SDK_DISABLED')
  t.equal(tracingProtocol(settings({ ...endpoint, OTEL_SDK_DISABLED: 'TRUE' })), null, 'in any case')
  t.equal(tracingProtocol(settings({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' })), null, 'exporter none')
  t.equal(tracingProtocol(settings({ ...endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })), 'http/json')
  t.equal(
    tracingProtocol(
      settings({
        ...endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
      }),
    ),
    'http/protobuf',
    'the traces protocol wins over the general one',
  )
})

t.test('settings the service cannot honour are refused at boot, naming the variable', async (t) => {
  t.throws(() => settings({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), ConfigError)
  t.throws(() => settings({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), /^OTEL_EXPORTER_OTLP_PROTOCOL is invalid/)
  t.throws(() => settings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }), /^OTEL_EXPORTER_OTLP_ENDPOINT/)
  t.throws(() => settings({ OTEL_TRACES_EXPORTER: 'zipkin' }), /^OTEL_TRACES_EXPORTER is invalid/)
})

t.test('off: no SDK, no mixin, no hooks, no channel subscribers, postgres.js untouched', async (t) => {
  t.equal(await startTracing(settings({})), null)
  t.equal(activeTracing(), null)
  t.equal(loggerOptions({ LOG_LEVEL: 'info' }).mixin, undefined, 'log lines cost what they did')
  const app = await build(t)
  t.notOk(app.hasPlugin('@fastify/otel'), 'no request hooks')
  t.notOk(hasSubscribers('fastify.initialization'))
  t.notOk(hasSubscribers('undici:request:create'), 'fetch is not watched')
  t.notOk(tracingChannel('ioredis:command').hasSubscribers, 'ioredis is not watched')
  const query = Object.getPrototypeOf(app.sql`select 1`) as { handle: { name: string } }
  t.equal(query.handle.name, 'handle', "postgres.js's own method, not the observer's")
})

/** An OTLP/HTTP receiver that keeps every body it is sent. */
async function receiver(t: Test) {
  const bodies: { path: string; type: string; body: Buffer }[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      bodies.push({
        path: req.url ?? '',
        type: req.headers['content-type'] ?? '',
        body: Buffer.concat(chunks),
      })
      res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/x-protobuf' }).end()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies }
}

t.test('server.ts with an OTLP endpoint: spans in protobuf reach it by the time it exits', async (t) => {
  const sink = await receiver(t)
  const child: ChildProcess = spawn(process.execPath, [...process.execArgv, join(root, 'server.ts')], {
    cwd: root,
    env: await serverProcessEnv({
      OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
      // Boot stalls the event loop on a busy machine: load shedding would answer the first request.
      UNDER_PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let stdout = ''
  child.stdout?.on('data', (chunk) => {
    stdout += chunk
  })
  const exited = once(child, 'close')
  const events = () =>
    stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
  while (!events().some((e) => e.event === 'server.started')) {
    if (child.exitCode !== null) t.fail(`exited before starting: ${stdout}`)
    await once(child.stdout as NodeJS.ReadableStream, 'data')
  }
  t.match(events(), [{ event: 'tracing.enabled', protocol: 'http/protobuf' }], 'says tracing is on')
  const url = events().find((e) => e.event === 'server.started')?.url as string

  const traceId = randomBytes(16).toString('hex')
  const res = await fetch(`${url}/api/auth/login`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01`,
    },
    body: JSON.stringify({ username: 'nobody_here', password: 'Not-The-Password-42' }),
  })
  t.equal(res.status, 401)
  child.kill('SIGTERM')
  const [code] = await exited
  t.equal(code, 0, 'a clean exit')

  const traces = sink.bodies.filter((b) => b.path === '/v1/traces')
  t.ok(traces.length > 0, 'the endpoint got /v1/traces')
  t.ok(
    traces.every((b) => b.type === 'application/x-protobuf'),
    'as protobuf',
  )
  const all = Buffer.concat(traces.map((b) => b.body))
  t.ok(all.includes(Buffer.from(traceId, 'hex')), 'the incoming trace id is in them')
  t.ok(all.includes(Buffer.from('POST /api/auth/login')), 'the request span, named after its route')
  t.ok(all.includes(Buffer.from('db.query.text')), 'a query span')
  t.ok(all.includes(Buffer.from('bulwark')), 'the default service name')
  const line = events().find((e) => e.event === 'request')
  t.equal(line?.trace_id, traceId, 'the request log line carries the trace id')
})
