import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autoload from '@fastify/autoload'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyServerOptions } from 'fastify'
import type { Logger } from 'pino'
import configPlugin from './plugins/app/config.js'
import redisPlugin from './plugins/app/redis.js'
import { type Config, splitList } from './schemas/env.js'
import { createLogger, RequestLogController, requestIdFor } from './services/logger.js'

const here = dirname(fileURLToPath(import.meta.url))

export interface BuildOptions {
  /** The process logger; tests pass one that writes to a captured stream. */
  logger?: Logger
}

/**
 * Errors Node raises before Fastify sees a request (a slow client cut off by requestTimeout or
 * headersTimeout, oversized or malformed headers) still get a problem+json answer.
 */
function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy(error)
    return
  }
  const status =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400
  const title = STATUS_CODES[status] ?? 'Bad Request'
  const body = JSON.stringify({
    type: 'about:blank',
    title,
    status,
    detail: status === 408 ? 'The request took too long to arrive.' : 'The request could not be read.',
    instance: '',
    requestId: randomUUID(),
  })
  socket.end(
    `HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`,
  )
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
    // Only gateways listed in TRUST_PROXY may speak for the client in X-Forwarded-For; without it the
    // forwarding headers are ignored and cannot be rotated to dodge rate limits.
    trustProxy: splitList(config.TRUST_PROXY).length > 0 ? splitList(config.TRUST_PROXY) : false,
    clientErrorHandler: answerClientError,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    routerOptions: {
      caseSensitive: true,
      ignoreTrailingSlash: false,
      ignoreDuplicateSlashes: false,
      maxParamLength: config.MAX_PARAM_LENGTH,
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
  await app.register(redisPlugin)
  if (existsSync(join(here, 'plugins/external'))) {
    await app.register(autoload, { dir: join(here, 'plugins/external'), forceESM: true, options: {} })
  }
  await app.register(autoload, {
    dir: join(here, 'plugins/app'),
    forceESM: true,
    ignoreFilter: (path) => /\/(config|redis)\.(ts|js)$/.test(path), // registered above, before external
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
