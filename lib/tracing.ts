import type { Sql } from 'postgres'
import type { Config } from '../schemas/env.js'
import type { QueryObserver } from './db-observer.js'

/**
 * OpenTelemetry tracing, off by default. This module imports nothing of OpenTelemetry: the SDK is
 * loaded (lib/tracing-sdk.ts, a dynamic import) only when an OTLP endpoint is configured, so a
 * service without tracing loads none of it and runs none of its hooks.
 */

export type TracingSettings = Pick<
  Config,
  | 'OTEL_SDK_DISABLED'
  | 'OTEL_TRACES_EXPORTER'
  | 'OTEL_EXPORTER_OTLP_ENDPOINT'
  | 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'
  | 'OTEL_EXPORTER_OTLP_PROTOCOL'
  | 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'
>

export type OtlpProtocol = 'http/protobuf' | 'http/json'

/** What the running SDK offers the rest of the service. */
export interface Tracing {
  protocol: OtlpProtocol
  /** The trace and span ids of the active span, as log fields (a new object each call: pino merges into it). */
  logFields: () => Record<string, string>
  /** An observer (lib/db-observer.ts) that makes a client span of each query run inside a span. */
  queryObserver: (sql: Sql) => QueryObserver
  /** Exports what is buffered now. */
  flush: () => Promise<void>
  /** Exports what is left (bounded in time) and stops tracing. */
  shutdown: () => Promise<void>
}

/**
 * The exporter protocol when tracing is on, or null when it is off: on once an OTLP endpoint is set
 * (the traces one or the general one), unless OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none.
 * The specification's default protocol is http/protobuf.
 */
export function tracingProtocol(settings: TracingSettings): OtlpProtocol | null {
  if (settings.OTEL_SDK_DISABLED || settings.OTEL_TRACES_EXPORTER === 'none') return null
  if (!settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT && !settings.OTEL_EXPORTER_OTLP_ENDPOINT) return null
  return (
    settings.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? settings.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf'
  )
}

let active: Tracing | null = null

/**
 * Starts the SDK when the settings turn tracing on (once per process; later calls return the same
 * one), before the logger and the app are built: the logger then carries trace ids, and the
 * Fastify instrumentation hooks the app as it is created, ahead of every other hook.
 */
export async function startTracing(settings: TracingSettings): Promise<Tracing | null> {
  if (active) return active
  const protocol = tracingProtocol(settings)
  if (!protocol) return null
  const { startSdk } = await import('./tracing-sdk.js')
  const sdk = await startSdk(protocol)
  const started: Tracing = {
    ...sdk,
    async shutdown() {
      if (active === started) active = null
      await sdk.shutdown()
    },
  }
  active = started
  return started
}

/** The running tracing, or null when it is off. */
export function activeTracing(): Tracing | null {
  return active
}
