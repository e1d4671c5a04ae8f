import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { type Server, STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autoload from '@fastify/autoload'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyHttpOptions } from 'fastify'
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
 * What helmet (plugins/external/helmet.ts) sets on every response, for the few answers written
 * before any hook runs: client errors on the raw socket and router errors.
 */
const EARLY_ANSWER_HEADERS = {
  'content-type': 'application/problem+json; charset=utf-8',
  'content-security-policy': "default-src 'none';frame-ancestors 'none'",
  'cross-origin-resource-policy': 'same-origin',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
}

function earlyProblem(status: number, detail: string, instance: string, requestId: string): string {
  return JSON.stringify({
    type: 'about:blank',
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    instance,
    requestId,
  })
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
  const requestId = randomUUID()
  const detail = status === 408 ? 'The request took too long to arrive.' : 'The request could not be read.'
  const body = earlyProblem(status, detail, '', requestId)
  const headers = {
    ...EARLY_ANSWER_HEADERS,
    'x-request-id': requestId,
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  }
  const head = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n')
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Bad Request'}\r\n${head}\r\n\r\n${body}`)
}

/** The one set of server options, used by server.ts and every test alike. */
export function serverOptions(config: Config): FastifyHttpOptions<Server> {
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
    // Node checks requestTimeout/headersTimeout only every connectionsCheckingInterval (30 s by
    // default): check often enough that a slow client is cut off close to the configured timeout.
    http: { connectionsCheckingInterval: Math.min(1000, Math.floor(config.HEADERS_TIMEOUT_MS / 2)) },
    // URL errors caught by the router (a parameter over maxParamLength, bad percent-encoding) are
    // answered before any hook or the error handler runs: write the problem and headers here.
    frameworkErrors: function routerError(error, request, reply) {
      const status = error.statusCode === 414 ? 414 : 400
      const requestId = String(request.id)
      const detail = status === 414 ? 'A path segment is too long.' : 'The URL could not be read.'
      const instance = (request.url.split('?')[0] ?? '/').slice(0, 256)
      reply
        .code(status as never)
        .headers({ ...EARLY_ANSWER_HEADERS, 'x-request-id': requestId })
        .send(earlyProblem(status, detail, instance, requestId) as never)
    },
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
