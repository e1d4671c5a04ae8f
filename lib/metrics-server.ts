import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'

/**
 * The scrape endpoint on a listener of its own (METRICS_HOST:METRICS_PORT), so the public port never
 * serves it. A bare node:http server: one path, no body parsing, nothing else to expose or harden.
 */

export const METRICS_PATH = '/metrics'
/** Connections the metrics listener holds at once; more are closed on arrival. */
export const MAX_CONNECTIONS = 16

export interface MetricsServer {
  /** `http://host:port/metrics`, with the port actually bound (METRICS_PORT=0 picks a free one). */
  url: string
  close(): Promise<void>
}

const PLAIN = { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' }

function answer(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) {
  res.writeHead(status, { ...PLAIN, ...headers, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

export async function serveMetrics(
  registry: Registry,
  where: { host: string; port: number },
  onError: (error: unknown) => void,
): Promise<MetricsServer> {
  async function scrape(req: IncomingMessage, res: ServerResponse) {
    if ((req.url ?? '').split('?')[0] !== METRICS_PATH) return answer(res, 404, 'Not Found\n')
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return answer(res, 405, 'Method Not Allowed\n', { allow: 'GET, HEAD' })
    }
    try {
      const body = await registry.metrics()
      const headers = { 'content-type': registry.contentType, 'cache-control': 'no-store' }
      res.writeHead(200, { ...PLAIN, ...headers, 'content-length': Buffer.byteLength(body) })
      res.end(req.method === 'HEAD' ? undefined : body)
    } catch (error) {
      onError(error)
      answer(res, 500, 'Internal Server Error\n')
    }
  }
  // Node checks these timeouts only every connectionsCheckingInterval (30 s by default): checked each
  // second, a slow client is cut off near them. Capped connections keep a flood from spending the
  // process's file descriptors, which the public port needs (a scraper uses one or two).
  const server = createServer(
    { requestTimeout: 10_000, headersTimeout: 5000, connectionsCheckingInterval: 1000 },
    (req, res) => {
      void scrape(req, res)
    },
  )
  server.maxConnections = MAX_CONNECTIONS
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(where.port, where.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { address, port } = server.address() as AddressInfo
  const host = address.includes(':') ? `[${address}]` : address
  return {
    url: `http://${host}:${port}${METRICS_PATH}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
