import { randomUUID } from 'node:crypto'
import { type Server, STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import { type FastifyHttpOptions, type FastifyReply, type FastifyRequest, LogController } from 'fastify'
import { AppError } from './lib/errors.js'
import { securityHeaders } from './lib/security-headers.js'
import { createRequestIdGenerator, REQUEST_ID } from './plugins/app/request-id.js'
import type { Config } from './schemas/env.js'

/**
 * The one set of Fastify server options, used by server.ts and every test alike: timeouts, router,
 * request ids, request log lines, and the answers written before any hook runs.
 */

/** The headers of the few answers written before any hook runs: client errors and router errors. */
function earlyAnswerHeaders(config: Config): Record<string, string> {
  return { 'content-type': 'application/problem+json; charset=utf-8', ...securityHeaders(config) }
}

function earlyProblem(
  status: number,
  detail: string,
  instance: string,
  requestId: string,
  type = 'about:blank',
): string {
  return JSON.stringify({
    type,
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    instance,
    requestId,
  })
}

const MAX_LOGGED_PATH = 256

/** A client's own x-request-id that was not honoured, kept apart for correlation and never trusted. */
function untrustedRequestId(request: FastifyRequest): { untrustedRequestId?: string } {
  const given = request.headers['x-request-id']
  return typeof given === 'string' && given !== request.id && REQUEST_ID.test(given)
    ? { untrustedRequestId: given }
    : {}
}

/**
 * Fastify's own hook for request log lines: one line per request (method, route, status,
 * duration), never bodies, headers or the query string, which may carry secrets.
 */
export class RequestLogController extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'requestId' })
  }

  override incomingRequest(): void {}

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    const line = {
      event: 'request',
      method: request.method,
      route: request.routeOptions.url ?? null,
      path: (request.url.split('?')[0] ?? '').slice(0, MAX_LOGGED_PATH),
      status: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 100) / 100,
      ...untrustedRequestId(request),
    }
    if (error) reply.log.error({ ...line, err: error }, 'request errored')
    else reply.log.info(line, 'request completed')
  }

  override routeNotFound(): void {}
}

export function serverOptions(config: Config): FastifyHttpOptions<Server> {
  const early = earlyAnswerHeaders(config)

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
      ...early,
      'x-request-id': requestId,
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    }
    const head = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}`)
      .join('\r\n')
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Bad Request'}\r\n${head}\r\n\r\n${body}`)
  }

  return {
    logController: new RequestLogController(),
    genReqId: createRequestIdGenerator(config.TRUST_PROXY),
    bodyLimit: config.BODY_LIMIT_BYTES,
    // A slow client cannot hold a socket: whole request and headers are bounded; keep-alive outlives
    // a typical gateway idle timeout (60 s) so the gateway, not us, closes idle connections.
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    keepAliveTimeout: config.KEEP_ALIVE_TIMEOUT_MS,
    forceCloseConnections: 'idle',
    return503OnClosing: false, // readiness reports draining itself, as a problem+json (plugins/app/lifecycle.ts)
    // Only gateways listed in TRUST_PROXY may speak for the client in X-Forwarded-For; without it the
    // forwarding headers are ignored and cannot be rotated to dodge rate limits.
    trustProxy: config.TRUST_PROXY.length > 0 ? [...config.TRUST_PROXY] : false,
    clientErrorHandler: answerClientError,
    // Node checks requestTimeout/headersTimeout only every connectionsCheckingInterval (30 s by
    // default): check often enough that a slow client is cut off close to the configured timeout.
    // A request without Host reaches plugins/app/http-protocol.ts, which answers it as a problem with
    // the security headers (Node's own 400 has none).
    http: {
      connectionsCheckingInterval: Math.min(1000, Math.floor(config.HEADERS_TIMEOUT_MS / 2)),
      requireHostHeader: false,
    },
    // URL errors caught by the router (a parameter over maxParamLength, bad percent-encoding) are
    // answered before any hook or the error handler runs: write the problem and headers here.
    frameworkErrors: async function routerError(error, request, reply) {
      let status = error.statusCode === 414 ? 414 : 400
      let type = 'about:blank'
      let detail = status === 414 ? 'A path segment is too long.' : 'The URL could not be read.'
      // A scanner's malformed URLs spend the same global budget as its other requests (ASVS 5.0 2.4.1).
      try {
        await request.server.countRouterRefusal?.(request, reply)
      } catch (limited) {
        // Only the limit's own answer replaces the router's; anything else leaves the refusal as it is.
        if (limited instanceof AppError) {
          status = limited.statusCode
          type = limited.type ? `urn:bulwark:problem:${limited.type}` : type
          detail = limited.message
        } else request.log.warn({ err: limited, event: 'ratelimit.failed' }, 'router refusal not counted')
      }
      request.server.metrics?.routerRefused(status)
      const requestId = String(request.id)
      const instance = (request.url.split('?')[0] ?? '/').slice(0, 256)
      // The router answers before any hook, so the request log line is written here: a scanner's
      // probes of malformed URLs leave a trace like every other request (ASVS 5.0 16.2.1).
      request.log.info(
        { event: 'request', method: request.method, route: null, path: instance, status, routerError: true },
        'request refused by the router',
      )
      reply
        .code(status as never)
        .headers({ ...early, 'x-request-id': requestId })
        .send(earlyProblem(status, detail, instance, requestId, type) as never)
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
