import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import { type AddressInfo, connect } from 'node:net'
import t from 'tap'
import { startTracing, type Tracing } from '../../lib/tracing.js'
import { build, logCapture, skipUnlessCI, TEST_PASSWORD, testConfig, uniqueName } from '../helper.js'

/**
 * Tracing switched on in this process (the SDK is process-global: tap runs each file in its own),
 * exporting OTLP/JSON to a local receiver that also stands in for the breach-check API.
 */

interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  status?: { code?: number }
  attributes: { key: string; value: Record<string, unknown> }[]
}

const attribute = (span: OtlpSpan, key: string) => {
  const value = span.attributes.find((a) => a.key === key)?.value
  return value ? Object.values(value)[0] : undefined
}

const spans: OtlpSpan[] = []
const resources: unknown[] = []
const rangeRequests: IncomingHttpHeaders[] = []
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.on('end', () => {
    if (req.url === '/v1/traces') {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      for (const rs of body.resourceSpans ?? []) {
        resources.push(rs.resource)
        for (const ss of rs.scopeSpans ?? []) spans.push(...ss.spans)
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
      return
    }
    // The breach-check API: no suffix matches, so the password counts as never breached.
    rangeRequests.push(req.headers)
    res.writeHead(200, { 'content-type': 'text/plain' }).end('')
  })
})
receiver.listen(0, '127.0.0.1')
await once(receiver, 'listening')
t.teardown(() => receiver.close())
const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`

/** True when a password-less Redis answers PING at 127.0.0.1:6379 (a fresh machine may have none). */
const redisAnswers = () =>
  new Promise<boolean>((resolve) => {
    const socket = connect({ port: 6379, host: '127.0.0.1' }, () => socket.write('PING\r\n'))
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')))
    socket.once('error', () => done(false))
    socket.setTimeout(1000, () => done(false))
  })
const noRedis = (await redisAnswers()) ? false : 'no password-less Redis answers at 127.0.0.1:6379'

const env = {
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiverUrl}/v1/traces`,
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
  OTEL_SERVICE_NAME: 'bulwark-tracing-test',
  PWNED_PASSWORDS_URL: receiverUrl,
  REDIS_URL: 'redis://127.0.0.1:6379',
  RATE_LIMIT_KEY_PREFIX: `bulwark-trace-test:${process.pid}:`,
}
// The exporter and the resource read their OTEL_* variables from the environment, as in production.
Object.assign(process.env, env)
const tracing = (await startTracing(await testConfig(env))) as Tracing
t.teardown(() => tracing.shutdown())

t.test(
  'a request with traceparent: its span, its queries, Redis and fetch are one trace, and its log lines carry it',
  { skip: skipUnlessCI(noRedis) },
  async (t) => {
    t.ok(tracing, 'an OTLP endpoint turns tracing on')
    t.equal(tracing.protocol, 'http/json')
    const log = logCapture()
    const app = await build(t, { env, logStream: log.stream })

    const traceId = randomBytes(16).toString('hex')
    const parentId = randomBytes(8).toString('hex')
    const username = uniqueName('trace')
    const res = await app.inject({
      method: 'POST',
      url: '/api/auth/register?utm=secret-query',
      headers: { traceparent: `00-${traceId}-${parentId}-01` },
      payload: { username, email: `${username}@example.com`, password: TEST_PASSWORD },
    })
    t.equal(res.statusCode, 201)
    await tracing.flush()

    const trace = spans.filter((s) => s.traceId === traceId)
    const request = trace.find((s) => s.parentSpanId === parentId)
    t.ok(request, 'the request span is a child of the incoming span, in its trace')
    if (!request) return
    t.equal(request.name, 'POST /api/auth/register', 'named after the route template')
    t.equal(request.kind, 2, 'a server span')
    t.equal(attribute(request, 'http.route'), '/api/auth/register')
    t.equal(attribute(request, 'url.path'), '/api/auth/register', 'no query string')
    t.equal(Number(attribute(request, 'http.response.status_code')), 201)

    // Every span of the trace descends from the request span.
    const byId = new Map(trace.map((s) => [s.spanId, s]))
    const underRequest = (span: OtlpSpan): boolean => {
      for (let s: OtlpSpan | undefined = span; s; s = byId.get(s.parentSpanId ?? '')) {
        if (s.parentSpanId === request.spanId) return true
      }
      return false
    }
    const queries = trace.filter((s) => attribute(s, 'db.system') === 'postgresql')
    t.ok(queries.length >= 1, 'database queries are spans')
    t.ok(queries.every(underRequest), 'each inside the request')
    t.ok(
      queries.every((s) => s.kind === 3 && !JSON.stringify(s).includes(username)),
      'client spans, with placeholders and never the parameters',
    )
    const insert = queries.find((s) => s.name === 'INSERT')
    t.match(attribute(insert as OtlpSpan, 'db.query.text'), /^\s*insert into users[\s\S]*\$1/)
    t.equal(attribute(insert as OtlpSpan, 'db.operation.name'), 'INSERT')

    const redis = trace.filter((s) => attribute(s, 'db.system') === 'redis')
    t.same(
      redis.map((s) => s.name),
      ['MULTI/EXEC', 'MULTI/EXEC'],
      "the register limit's counter, then the account's mail budget: one transaction each, one span each (not one per command)",
    )
    t.ok(redis.every(underRequest), 'inside the request')
    t.equal(Number(attribute(redis[0] as OtlpSpan, 'db.operation.batch.size')), 3)
    t.notOk(JSON.stringify(redis).includes(env.RATE_LIMIT_KEY_PREFIX), 'no keys in Redis spans')

    const fetchSpan = trace.find((s) => s.kind === 3 && attribute(s, 'http.request.method') === 'GET')
    t.ok(fetchSpan && underRequest(fetchSpan), 'the breach check is a client span of the request')
    t.equal(attribute(fetchSpan as OtlpSpan, 'url.full'), `${receiverUrl}/[Redacted]`, 'no hash prefix')
    const outgoing = rangeRequests.at(-1)?.traceparent
    t.match(outgoing, new RegExp(`^00-${traceId}-${fetchSpan?.spanId}-01$`), 'fetch carries traceparent')

    const line = log.lines.find((l) => l.event === 'request' && l.route === '/api/auth/register')
    t.equal(line?.trace_id, traceId, 'the request log line carries the trace id')
    t.match(line?.span_id, /^[0-9a-f]{16}$/)
    t.match(
      JSON.stringify(resources),
      /"key":"service.name","value":\{"stringValue":"bulwark-tracing-test"\}/,
      'OTEL_SERVICE_NAME names the service',
    )
  },
)

t.test('a failed query, a probe and work outside requests', { skip: skipUnlessCI(noRedis) }, async (t) => {
  const app = await build(t, { env })
  const before = spans.length
  const traceId = randomBytes(16).toString('hex')
  const probe = await app.inject({
    url: '/health/ready',
    headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` },
  })
  t.equal(probe.statusCode, 200)
  await t.rejects(app.sql`select * from no_such_table`)
  await app.redis?.ping()
  const { trace, context } = await import('@opentelemetry/api')
  const span = trace.getTracer('test').startSpan('job')
  await context.with(trace.setSpan(context.active(), span), async () => {
    await t.rejects(app.sql`select * from no_such_table where id = ${1}`)
    await app.redis?.ping()
    await t.rejects(app.redis?.call('no_such_command', 'secret-argument') ?? Promise.reject())
  })
  span.end()
  await tracing.flush()
  const fresh = spans.slice(before)
  t.notOk(
    fresh.some((s) => s.traceId === traceId),
    'health probes make no trace',
  )
  const failed = fresh.filter((s) => attribute(s, 'db.system') === 'postgresql')
  t.equal(failed.length, 1, 'only the query inside a span is one')
  t.equal(failed[0]?.parentSpanId, span.spanContext().spanId)
  t.equal(failed[0]?.name, 'SELECT')
  t.same(failed[0]?.status, { code: 2, message: '42P01' }, 'its status is error, with the SQLSTATE')
  t.equal(attribute(failed[0] as OtlpSpan, 'db.response.status_code'), '42P01')
  t.equal(attribute(failed[0] as OtlpSpan, 'db.query.text'), 'select * from no_such_table where id = $1')
  const redis = fresh.filter((s) => attribute(s, 'db.system') === 'redis')
  t.same(
    redis.map((s) => [s.name, s.parentSpanId, s.status?.code ?? 0]),
    [
      ['PING', span.spanContext().spanId, 0],
      ['NO_SUCH_COMMAND', span.spanContext().spanId, 2],
    ],
    'Redis calls outside a span make none; inside one, a span each, failures with an error status',
  )
  t.notOk(JSON.stringify(redis).includes('secret-argument'), 'never the arguments, not even from its error')
  t.equal(attribute(redis[1] as OtlpSpan, 'error.type'), 'ERR')
})

t.test(
  "bug: a client's tracestate was forwarded to the breach-check API and exported",
  { skip: skipUnlessCI(noRedis) },
  async (t) => {
    const app = await build(t, { env })
    const traceId = randomBytes(16).toString('hex')
    const username = uniqueName('state')
    const res = await app.inject({
      method: 'POST',
      url: '/api/auth/register',
      headers: {
        traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01`,
        tracestate: 'client=forwarded-state',
        baggage: 'userId=forwarded-baggage',
      },
      payload: { username, email: `${username}@example.com`, password: TEST_PASSWORD },
    })
    t.equal(res.statusCode, 201)
    await tracing.flush()
    const outgoing = rangeRequests.at(-1) ?? {}
    t.match(outgoing.traceparent, new RegExp(`^00-${traceId}-`), 'the trace still continues into fetch')
    t.equal(outgoing.tracestate, undefined, 'no tracestate sent on to a third party')
    t.equal(outgoing.baggage, undefined, 'nor baggage')
    const trace = spans.filter((s) => s.traceId === traceId)
    t.ok(trace.length > 0, 'the request was traced')
    t.notOk(JSON.stringify(trace).includes('forwarded-'), "the client's state is in no exported span")
  },
)
