import { realpathSync } from 'node:fs'
import { Server as NetServer } from 'node:net'
import { constants } from 'node:os'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import { ConfigError, configOrExit, developmentDefaults } from './lib/config.js'
import { tlsOverrides } from './lib/db-tls.js'
import { type EmbeddedDatabase, resolveDatabase } from './lib/embedded-postgres.js'
import { createLogger } from './lib/logger.js'
import { startTracing } from './lib/tracing.js'

/** The service's entry point: settings, the embedded database when needed, listen, graceful shutdown. */

export interface ShutdownOptions {
  timeoutMs: number
  /**
   * How long to keep serving, while readiness answers 503, before closing the listener: the time a
   * gateway or orchestrator needs to stop routing new requests here (0: close at once).
   */
  delayMs?: number
  /**
   * Refuse new connections from the signal on, still serving open ones through the delay: for
   * gateways that fail over only when a connect fails (nginx open source, no active health checks).
   */
  closeListenerFirst?: boolean
  /** Runs after the server has closed (e.g. stopping the embedded database). */
  cleanup?: () => Promise<void>
  exit: (code: number) => void
  signals?: NodeJS.Signals[]
}

/** How long a forced exit (timeout, second signal) still waits for cleanup such as stopping PostgreSQL. */
const FORCED_CLEANUP_MS = 3000

/**
 * On SIGTERM/SIGINT: report not-ready and keep serving for delayMs, then stop accepting connections,
 * let in-flight requests finish (bounded by timeoutMs), close the pool and the embedded database,
 * and exit 0 (1 if the bound was hit). A second signal during shutdown exits at once.
 */
export function installGracefulShutdown(app: FastifyInstance, options: ShutdownOptions): () => void {
  const signals = options.signals ?? ['SIGTERM', 'SIGINT']
  let closing = false
  let exited = false
  let forced = false
  let failed = false
  let timer: NodeJS.Timeout | undefined
  let cleanup: Promise<void> | undefined
  const runCleanup = () => {
    cleanup ??= (options.cleanup?.() ?? Promise.resolve()).catch((err: unknown) => {
      app.log.error({ err, event: 'server.cleanup.failed' }, 'cleanup failed')
      failed = true
    })
    return cleanup
  }
  // Cleanup runs once and exit happens once, whoever gets there first: the clean path, the timer or
  // a second signal. A forced exit waits for cleanup only briefly, so a hung cleanup cannot block it.
  const exit = async (code: number, forced: boolean) => {
    if (exited) return
    const bound = new Promise<void>((done) => setTimeout(done, FORCED_CLEANUP_MS).unref())
    await (forced ? Promise.race([runCleanup(), bound]) : runCleanup())
    if (exited) return
    exited = true
    clearTimeout(timer)
    options.exit(failed ? 1 : code)
  }
  const onSignal = async (signal: NodeJS.Signals) => {
    if (closing) {
      app.log.warn({ event: 'server.shutdown.forced', signal }, 'second signal: exiting now')
      forced = true
      return exit(1, true)
    }
    closing = true
    const delayMs = options.delayMs ?? 0
    // Not ready from now on, still serving: the load balancer drains this replica before it closes.
    app.lifecycle.draining = true
    // net.Server's close stops accepting only; http.Server's would also drop idle keep-alive
    // connections (Node >= 19), racing a request the gateway is sending on one.
    if (options.closeListenerFirst && app.server.listening) NetServer.prototype.close.call(app.server)
    app.log.info(
      { event: 'server.shutdown', signal, delayMs, closeListenerFirst: options.closeListenerFirst === true },
      'shutting down',
    )
    if (delayMs > 0) await new Promise((done) => setTimeout(done, delayMs))
    if (forced) return
    timer = setTimeout(() => {
      app.log.error({ event: 'server.shutdown.timeout', timeoutMs: options.timeoutMs }, 'shutdown timed out')
      void exit(1, true)
    }, options.timeoutMs)
    timer.unref()
    try {
      await app.close()
    } catch (err) {
      app.log.error({ err, event: 'server.shutdown.failed' }, 'shutdown failed')
      failed = true
    }
    await exit(0, false)
  }
  for (const s of signals) process.on(s, onSignal)
  return () => {
    for (const s of signals) process.removeListener(s, onSignal)
  }
}

/**
 * Fastify logs the resolver's result with `log.info(result)`, and pino takes an object's `msg` as
 * the message: an object here gives that line our event field (test/server.test.ts holds this).
 * Fastify calls it once per address (every interface for 0.0.0.0, both loopbacks for localhost):
 * the first is the one `server.started` line, the others say `server.listening`.
 */
export function startedLines(): (url: string) => string {
  let started = false
  return (url) => {
    const line = started
      ? { event: 'server.listening', url, msg: `Bulwark also listening on ${url}` }
      : { event: 'server.started', url, msg: `Bulwark listening on ${url}` }
    started = true
    return line as unknown as string
  }
}

export async function main(): Promise<void> {
  const loaded = configOrExit()
  // Before the logger and the app: log lines then carry trace ids, and requests are traced from their first hook.
  const tracing = await startTracing(loaded)
  const logger = createLogger(loaded)
  if (tracing)
    logger.info({ event: 'tracing.enabled', protocol: tracing.protocol }, 'OpenTelemetry tracing on')
  const defaults = developmentDefaults(loaded)
  if (defaults.length > 0) {
    logger.warn(
      { event: 'config.development_defaults', settings: defaults },
      `using development defaults for ${defaults.join(', ')}; never in production`,
    )
  }
  if (loaded.NODE_ENV === 'production' && !loaded.COOKIE_SECURE) {
    logger.warn(
      { event: 'config.insecure_cookies', settings: ['COOKIE_SECURE', 'ALLOW_INSECURE_COOKIES'] },
      'cookies without Secure in production, explicitly allowed: only behind a gateway that terminates TLS',
    )
  }
  const plaintext = tlsOverrides(loaded)
  if (plaintext.length > 0) {
    logger.warn(
      { event: 'config.tls_disabled', settings: plaintext },
      `no TLS to a non-loopback host, explicitly allowed: ${plaintext.join(', ')}`,
    )
  }
  let embedded: EmbeddedDatabase | null = null
  // As PID 1 in a container a signal without a handler is ignored: a stop while the service is still
  // starting (waiting for the database, migrating) must end it too, not wait for SIGKILL.
  const stopWhileStarting = (signal: NodeJS.Signals) => {
    logger.warn({ event: 'server.start_interrupted', signal }, `${signal} while starting: exiting`)
    void (embedded?.stop() ?? Promise.resolve())
      .catch(() => {})
      .finally(() => process.exit(128 + constants.signals[signal]))
  }
  const startSignals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT']
  for (const s of startSignals) process.once(s, stopWhileStarting)
  try {
    const resolved = await resolveDatabase(loaded, logger, { announce: (line) => console.error(line) })
    embedded = resolved.embedded
    const config = resolved.config
    const app = await buildApp(config, { logger })
    // Fastify logs a "Server listening at" line of its own: this resolver makes that line ours (one
    // line with our event and wording) instead of a second line saying the same thing.
    await app.listen({
      host: config.HOST,
      port: config.PORT,
      listenTextResolver: startedLines(),
    })
    // Metrics on a listener of their own, never the public port; closed with the app (README, Metrics).
    const metricsUrl = await app.metrics?.listen()
    if (metricsUrl) logger.info({ event: 'metrics.started', metricsUrl }, `metrics on ${metricsUrl}`)
    // Started: from here on a signal drains and closes (the start handler would exit at once). The
    // new handler goes on before the old comes off: with none left, Node closes its signal watcher
    // and a signal already received but not yet dispatched is lost (test/server.test.ts).
    installGracefulShutdown(app, {
      timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
      delayMs: config.SHUTDOWN_DELAY_MS,
      closeListenerFirst: config.SHUTDOWN_CLOSE_LISTENER_FIRST,
      // Spans of the last requests are exported before the database stops.
      cleanup: async () => {
        await tracing?.shutdown()
        await embedded?.stop()
      },
      exit: (code) => process.exit(code),
    })
    for (const s of startSignals) process.removeListener(s, stopWhileStarting)
  } catch (err) {
    // A setting found wrong only once connected (a superuser runtime role) reads like any other.
    if (err instanceof ConfigError) console.error(`bulwark: invalid configuration: ${err.message}`)
    else logger.fatal({ err, event: 'server.start_failed' }, `failed to start: ${(err as Error).message}`)
    await embedded?.stop().catch(() => {})
    process.exit(1)
  }
}

const entry = process.argv[1] ? realpathSync(process.argv[1]) : ''
if (entry === fileURLToPath(import.meta.url)) await main()
