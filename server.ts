import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import { configOrExit, developmentDefaults } from './plugins/app/config.js'
import { type EmbeddedDatabase, resolveDatabase } from './services/embedded-postgres.js'
import { createLogger } from './services/logger.js'

export interface ShutdownOptions {
  timeoutMs: number
  /** Runs after the server has closed (e.g. stopping the embedded database). */
  cleanup?: () => Promise<void>
  exit: (code: number) => void
  signals?: NodeJS.Signals[]
}

/**
 * On SIGTERM/SIGINT: stop accepting connections, let in-flight requests finish (bounded by
 * timeoutMs), close the pool and the embedded database, then exit 0 (1 if the bound was hit).
 * A second signal during shutdown exits at once.
 */
export function installGracefulShutdown(app: FastifyInstance, options: ShutdownOptions): () => void {
  const signals = options.signals ?? ['SIGTERM', 'SIGINT']
  let closing = false
  let exited = false
  const finish = async (code: number) => {
    if (exited) return
    exited = true
    await options.cleanup?.().catch((err: unknown) => app.log.error({ err }, 'cleanup failed'))
    options.exit(code)
  }
  const onSignal = async (signal: NodeJS.Signals) => {
    if (closing) {
      app.log.warn({ event: 'server.shutdown.forced', signal }, 'second signal: exiting now')
      return finish(1)
    }
    closing = true
    app.log.info({ event: 'server.shutdown', signal }, 'shutting down')
    const timer = setTimeout(() => {
      app.log.error({ event: 'server.shutdown.timeout', timeoutMs: options.timeoutMs }, 'shutdown timed out')
      void finish(1)
    }, options.timeoutMs)
    timer.unref()
    try {
      await app.close()
      clearTimeout(timer)
      await finish(0)
    } catch (err) {
      app.log.error({ err, event: 'server.shutdown.failed' }, 'shutdown failed')
      await finish(1)
    }
  }
  for (const s of signals) process.on(s, onSignal)
  return () => {
    for (const s of signals) process.removeListener(s, onSignal)
  }
}

export async function main(): Promise<void> {
  const loaded = configOrExit()
  const logger = createLogger(loaded)
  const defaults = developmentDefaults(loaded)
  if (defaults.length > 0) {
    logger.warn(
      { event: 'config.development_defaults', settings: defaults },
      `using development defaults for ${defaults.join(', ')}; never in production`,
    )
  }
  let embedded: EmbeddedDatabase | null = null
  try {
    const resolved = await resolveDatabase(loaded, logger)
    embedded = resolved.embedded
    const config = resolved.config
    const app = await buildApp(config, { logger })
    installGracefulShutdown(app, {
      timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
      cleanup: async () => embedded?.stop(),
      exit: (code) => process.exit(code),
    })
    const address = await app.listen({ host: config.HOST, port: config.PORT })
    logger.info({ event: 'server.started', url: address }, `Bulwark listening on ${address}`)
  } catch (err) {
    logger.fatal({ err, event: 'server.start_failed' }, `failed to start: ${(err as Error).message}`)
    await embedded?.stop().catch(() => {})
    process.exit(1)
  }
}

const entry = process.argv[1] ? realpathSync(process.argv[1]) : ''
if (entry === fileURLToPath(import.meta.url)) await main()
