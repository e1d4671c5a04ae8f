import { tracingChannel } from 'node:diagnostics_channel'
import { type Context, type Span, SpanKind, SpanStatusCode, type Tracer } from '@opentelemetry/api'

/**
 * Client spans for Redis from ioredis's own tracing channels (`ioredis:command`, `ioredis:batch`,
 * ioredis 5.10 and later): no module patching, so it works whatever loaded ioredis first. Arguments
 * are left out: our keys hold client addresses and account ids.
 */

interface RedisMessage {
  command?: string
  batchMode?: string
  batchSize?: number
  database?: number
  serverAddress?: string
  serverPort?: number
  error?: unknown
  /** Ours: the span started for this call. */
  span?: Span
}

/**
 * True while a transaction sends its commands (synchronously, inside the batch call): they belong
 * to its span, not to spans of their own (a counter's MULTI, INCR, PEXPIRE, PTTL, EXEC: one span).
 */
let sendingBatch = false

function startHandler(tracer: () => Tracer, parentContext: () => Context | undefined) {
  return (message: RedisMessage) => {
    if (message.batchMode) sendingBatch = true
    else if (sendingBatch) return
    const parent = parentContext()
    if (!parent) return
    const operation = message.batchMode
      ? `${message.batchMode}/EXEC`
      : (message.command ?? 'redis').toUpperCase()
    message.span = tracer().startSpan(
      operation,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'db.system': 'redis',
          'db.system.name': 'redis',
          'db.operation.name': operation,
          'db.namespace': String(message.database ?? 0),
          ...(message.batchSize === undefined ? {} : { 'db.operation.batch.size': message.batchSize }),
          ...(message.serverAddress ? { 'server.address': message.serverAddress } : {}),
          ...(message.serverPort ? { 'server.port': message.serverPort } : {}),
        },
      },
      parent,
    )
  }
}

function finish(message: RedisMessage): void {
  const span = message.span
  if (!span) return
  message.span = undefined
  if (message.error) {
    // Redis's own prefix (ERR, WRONGTYPE, NOSCRIPT) only: the rest of its message quotes arguments.
    const type = /^[A-Z]+(?= )/.exec(String((message.error as Error).message))?.[0] ?? 'Error'
    span.setAttribute('error.type', type)
    span.setStatus({ code: SpanStatusCode.ERROR, message: type })
  }
  span.end()
}

/** Subscribes to ioredis's channels; the returned function unsubscribes. */
export function subscribeRedisTracing(
  tracer: () => Tracer,
  parentContext: () => Context | undefined,
): () => void {
  const handlers = {
    start: startHandler(tracer, parentContext),
    // `end` comes as the call returns its promise; the span ends when that settles (asyncEnd), or
    // here when the call threw before making one.
    end: (message: RedisMessage) => {
      if (message.batchMode) sendingBatch = false
      if (message.error) finish(message)
    },
    asyncStart: () => {},
    asyncEnd: finish,
    error: () => {},
  }
  const channels = [tracingChannel('ioredis:command'), tracingChannel('ioredis:batch')]
  for (const channel of channels) channel.subscribe(handlers as never)
  return () => {
    for (const channel of channels) channel.unsubscribe(handlers as never)
  }
}
