import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autoload from '@fastify/autoload'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger } from 'fastify'
import type { Logger } from 'pino'
import { createLogger } from './lib/logger.js'
import configPlugin from './plugins/config.js'
import errorsPlugin from './plugins/errors.js'
import securityHeadersPlugin from './plugins/security-headers.js'
import type { Config } from './schemas/env.js'
import { serverOptions } from './server-options.js'

/** buildApp: the server options, then config → errors → security headers → plugins/external → plugins/app → routes/. */

const here = dirname(fileURLToPath(import.meta.url))

export interface BuildOptions {
  /** The process logger; tests pass one that writes to a captured stream. */
  logger?: Logger
}

export async function buildApp(config: Config, options: BuildOptions = {}) {
  const logger = options.logger ?? createLogger(config)
  const app = Fastify({
    ...serverOptions(config),
    loggerInstance: logger as FastifyBaseLogger,
  }).withTypeProvider<TypeBoxTypeProvider>()
  app.server.headersTimeout = config.HEADERS_TIMEOUT_MS
  // JSON only: dropping the text/plain parser means any other body type is a 415 (and an HTML form
  // cannot post to us).
  app.removeContentTypeParser('text/plain')

  // The config plugin takes the validated settings; the external plugins read them in autoConfig.
  await app.register(configPlugin, { config })
  // Before any plugin adds a route: a route keeps the error handler set when it was added, so the
  // catch-all OPTIONS route of @fastify/cors answers problem+json like every other (RFC 9457).
  await app.register(errorsPlugin)
  // The first hook: an answer from any later one (a preflight, load shedding, a limit) has the headers.
  await app.register(securityHeadersPlugin)
  await app.register(autoload, { dir: join(here, 'plugins/external'), forceESM: true, options: {} })
  await app.register(autoload, { dir: join(here, 'plugins/app'), forceESM: true })
  await app.register(autoload, {
    dir: join(here, 'routes'),
    forceESM: true,
    autoHooks: true,
    cascadeHooks: true,
  })
  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>
