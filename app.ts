import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autoload from '@fastify/autoload'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyServerOptions } from 'fastify'
import type { Logger } from 'pino'
import configPlugin from './plugins/app/config.js'
import type { Config } from './schemas/env.js'
import { createLogger, RequestLogController, requestIdFor } from './services/logger.js'

const here = dirname(fileURLToPath(import.meta.url))

export interface BuildOptions {
  /** The process logger; tests pass one that writes to a captured stream. */
  logger?: Logger
}

/** The one set of server options, used by server.ts and every test alike. */
export function serverOptions(config: Config): FastifyServerOptions {
  return {
    logController: new RequestLogController(),
    genReqId: requestIdFor,
    bodyLimit: config.BODY_LIMIT_BYTES,
    // A slow client cannot hold a socket: whole request and headers are bounded; keep-alive outlives
    // a typical gateway idle timeout (60 s) so the gateway, not us, closes idle connections.
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    keepAliveTimeout: config.KEEP_ALIVE_TIMEOUT_MS,
    forceCloseConnections: 'idle',
    return503OnClosing: false, // readiness reports draining itself, as a problem+json (plugins/app/lifecycle.ts)
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    routerOptions: {
      caseSensitive: true,
      ignoreTrailingSlash: false,
      ignoreDuplicateSlashes: false,
      maxParamLength: 200,
    },
  }
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

  await app.register(configPlugin, { config })
  if (existsSync(join(here, 'plugins/external'))) {
    await app.register(autoload, { dir: join(here, 'plugins/external'), forceESM: true, options: {} })
  }
  await app.register(autoload, {
    dir: join(here, 'plugins/app'),
    forceESM: true,
    ignoreFilter: (path) => /\/config\.(ts|js)$/.test(path),
  })
  await app.register(autoload, {
    dir: join(here, 'routes'),
    forceESM: true,
    autoHooks: true,
    cascadeHooks: true,
  })
  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>
