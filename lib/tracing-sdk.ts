import { FastifyOtelInstrumentation } from '@fastify/otel'
import {
  type Context,
  context,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici'
import {
  defaultResource,
  detectResources,
  envDetector,
  resourceFromAttributes,
} from '@opentelemetry/resources'
import { BatchSpanProcessor, NodeTracerProvider, type SpanExporter } from '@opentelemetry/sdk-trace-node'
import type { FastifyRequest } from 'fastify'
import type { Sql } from 'postgres'
import type { OtlpProtocol, Tracing } from './tracing.js'
import { subscribeRedisTracing } from './tracing-redis.js'

/**
 * The OpenTelemetry SDK, loaded only when tracing is on (lib/tracing.ts). No module is patched:
 * Fastify through @fastify/otel (its diagnostics channel), fetch through undici's channels, ioredis
 * through its own tracing channels, postgres.js through lib/db-observer.ts.
 */

/** The longest shutdown waits to export what is left: a collector that is down must not hold the exit. */
const SHUTDOWN_EXPORT_MS = 2000
/** Probes and scrapes, every few seconds: traces of them would drown the requests. */
const UNTRACED_PATHS = /^\/(?:health\/|metrics(?:$|[/?]))/

const tracer = () => trace.getTracer('bulwark')

async function otlpExporter(protocol: OtlpProtocol): Promise<SpanExporter> {
  // Each reads its endpoint, headers, timeout and compression from the OTEL_EXPORTER_OTLP_* variables.
  if (protocol === 'http/json') {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http')
    return new OTLPTraceExporter()
  }
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-proto')
  return new OTLPTraceExporter()
}

/**
 * The request span is named after the route template (`GET /api/users/:id`), never the URL, whose
 * ids would make every name unique; url.path loses the query string, which may carry secrets.
 */
function nameRequestSpan(span: Span, request: FastifyRequest): void {
  const route = request.routeOptions.url
  span.updateName(route ? `${request.method} ${route}` : request.method)
  span.setAttribute('url.path', request.url.split('?', 1)[0] ?? '')
}

/** The parent of a client span, or undefined outside any span: work outside a request makes no trace. */
function parentContext(): Context | undefined {
  const active = context.active()
  return trace.getSpan(active) ? active : undefined
}

/** A client span for each postgres.js query run inside a span (db.query.text holds `$n` placeholders only). */
function queryObserver(sql: Sql) {
  const { host, port, database } = sql.options
  const server = { 'server.address': host[0] ?? '', 'server.port': port[0] ?? 5432 }
  return () => {
    const parent = parentContext()
    if (!parent) return () => {}
    const span = tracer().startSpan(
      'postgresql',
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'db.system': 'postgresql',
          'db.system.name': 'postgresql',
          'db.namespace': database,
          ...server,
        },
      },
      parent,
    )
    return ({ text, command, error }: { text: string; command: string | undefined; error: unknown }) => {
      const operation = command ?? /^\s*(\w+)/.exec(text)?.[1]?.toUpperCase()
      if (operation) {
        span.updateName(operation)
        span.setAttribute('db.operation.name', operation)
      }
      span.setAttribute('db.query.text', text)
      if (error) {
        // The SQLSTATE, not the message: PostgreSQL quotes input values in some (invalid input syntax…).
        const code = (error as { code?: unknown }).code
        const type = typeof code === 'string' ? code : (error as Error).name
        if (typeof code === 'string') span.setAttribute('db.response.status_code', code)
        span.setAttribute('error.type', type)
        span.setStatus({ code: SpanStatusCode.ERROR, message: type })
      }
      span.end()
    }
  }
}

/**
 * W3C trace context without the caller's tracestate: its vendor entries come from any client and
 * would ride along to the breach-check API (a third party) and into every exported span.
 */
class TraceparentOnly extends W3CTraceContextPropagator {
  override extract(context: Context, carrier: unknown, getter: TextMapGetter): Context {
    return super.extract(context, carrier, {
      keys: (c) => getter.keys(c),
      get: (c, key) => (key === 'tracestate' ? undefined : getter.get(c, key)),
    })
  }
}

/** The ids of the active span as log fields, named as OpenTelemetry's log data model names them. */
function logFields(): Record<string, string> {
  const span = trace.getSpan(context.active())
  if (!span) return {}
  const { traceId, spanId } = span.spanContext()
  return { trace_id: traceId, span_id: spanId }
}

export async function startSdk(protocol: OtlpProtocol): Promise<Tracing> {
  // Our default name, under what OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES say.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': 'bulwark' }))
    .merge(detectResources({ detectors: [envDetector] }))
  // The sampler (OTEL_TRACES_SAMPLER, _ARG) and the batch limits (OTEL_BSP_*) come from the environment.
  const provider = new NodeTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(await otlpExporter(protocol))],
  })
  // traceparent only: a client's baggage or tracestate would otherwise be forwarded to every outgoing call.
  provider.register({ propagator: new TraceparentOnly() })
  const instrumentations = [
    // Registered as each Fastify instance is created, so its hooks run before every other one: the
    // request span covers rate limiting and authentication too. One span per request and one for
    // the handler; a span per hook (about fifteen here) would multiply the cost.
    new FastifyOtelInstrumentation({
      registerOnInitialization: true,
      instrumentHooks: false,
      // A thrown error's stack is in its log line, which carries the trace id; 401s and 404s are
      // thrown too, and an exception event on each would cost more than it tells.
      recordExceptions: false,
      ignorePaths: ({ url }) => UNTRACED_PATHS.test(url),
      requestHook: nameRequestSpan,
    }),
    // Outgoing fetch carries traceparent. The breach check's URL holds five hex digits of a password's
    // SHA-1 (k-anonymity): the span keeps the origin only.
    new UndiciInstrumentation({
      requireParentforSpans: true,
      startSpanHook: (request) => ({
        'url.full': `${request.origin}/[Redacted]`,
        'url.path': '/[Redacted]',
        'url.query': '',
      }),
    }),
  ]
  const unsubscribeRedis = subscribeRedisTracing(tracer, parentContext)
  return {
    protocol,
    logFields,
    queryObserver,
    flush: () => provider.forceFlush(),
    async shutdown() {
      for (const instrumentation of instrumentations) instrumentation.disable()
      unsubscribeRedis()
      let timer: NodeJS.Timeout | undefined
      const bound = new Promise<void>((done) => {
        timer = setTimeout(done, SHUTDOWN_EXPORT_MS)
      })
      await Promise.race([provider.shutdown().catch(() => {}), bound])
      clearTimeout(timer)
    },
  }
}
