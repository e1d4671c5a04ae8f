import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import type { QueryObserver } from './db-observer.js'
import { type OutcomeCounters, observeSecurityEvent } from './metrics-events.js'

/**
 * The service's Prometheus instruments, in a registry of their own (several apps may share a test
 * process; prom-client's default registry would refuse the second one's default metrics). Every
 * label value comes from a bounded set: route templates, status classes, command tags, code literals.
 */

/** The route label of a request no route matched: one series however many URLs a scanner tries. */
export const UNMATCHED_ROUTE = 'unmatched'

/** Which limit refused a request. */
export type Limiter =
  | 'global'
  | 'route'
  | 'router'
  | 'login_address'
  | 'login_account'
  | 'login_device'
  | 'login_code'

/**
 * Methods with a series of their own. Node parses some 30 others (PROPFIND, MKCOL, PURGE…) that a
 * scanner can send to any path: they share `OTHER` instead of adding a series each.
 */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])
const methodOf = (method: string) => (METHODS.has(method) ? method : 'OTHER')

const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx']
const statusClass = (status: number) => STATUS_CLASSES[Math.floor(status / 100) - 1] ?? 'other'

/** PostgreSQL command tags worth a series of their own; any other is `OTHER`. */
const COMMANDS = new Set(
  'SELECT INSERT UPDATE DELETE MERGE BEGIN COMMIT ROLLBACK SAVEPOINT RELEASE SET SHOW LOCK COPY'.split(' '),
)
const FIRST_WORD = /^\s*([A-Za-z]+)/

/** A command tag, or for a failed statement its first keyword, reduced to the bounded set. */
function commandOf(command: string | undefined, text: string): string {
  const word = (command ?? FIRST_WORD.exec(text)?.[1] ?? '').toUpperCase()
  return COMMANDS.has(word) ? word : 'OTHER'
}

/** Timeouts are told apart from other failures: they are what an operator tunes. */
function outcomeOf(error: unknown): string {
  if (error === undefined) return 'ok'
  const code = (error as { code?: unknown } | null)?.code
  return code === '57014' ? 'timeout' : code === '55P03' ? 'lock_timeout' : 'error'
}

export interface MetricsOptions {
  /** DATABASE_POOL_MAX, published beside the queries in flight to compare them with. */
  poolMax: number
}

export function createMetrics(options: MetricsOptions) {
  const registry = new Registry()
  const registers = [registry]
  collectDefaultMetrics({ register: registry })

  const httpDuration = new Histogram({
    name: 'bulwark_http_request_duration_seconds',
    help: 'Time from receiving a request to its response being sent, by method, route template and status class; its _count is the request count.',
    labelNames: ['method', 'route', 'status_class'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  })
  let requestsInFlight = 0
  new Gauge({
    name: 'bulwark_http_requests_in_flight',
    help: 'Requests received and not yet answered or abandoned by their client.',
    registers,
    collect() {
      this.set(requestsInFlight)
    },
  })
  const routerRefusals = new Counter({
    name: 'bulwark_http_router_refusals_total',
    help: 'Requests the router refused before any route or hook ran (malformed URL, over-long parameter), by status.',
    labelNames: ['status'] as const,
    registers,
  })

  const queryDuration = new Histogram({
    name: 'bulwark_db_query_duration_seconds',
    help: 'Time from a query being issued (waiting for a pool connection included) to its result, by command tag and outcome.',
    labelNames: ['command', 'outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  })
  let queriesInFlight = 0
  new Gauge({
    name: 'bulwark_db_queries_in_flight',
    help: 'Queries issued and not yet answered, those waiting for a pool connection included; compare with bulwark_db_pool_max_connections.',
    registers,
    collect() {
      this.set(queriesInFlight)
    },
  })
  new Gauge({
    name: 'bulwark_db_pool_max_connections',
    help: 'The most connections the pool opens (DATABASE_POOL_MAX).',
    registers,
  }).set(options.poolMax)

  const rateLimited = new Counter({
    name: 'bulwark_rate_limit_rejections_total',
    help: 'Requests refused by a rate limit, by limiter and route template.',
    labelNames: ['limiter', 'route'] as const,
    registers,
  })
  const shed = new Counter({
    name: 'bulwark_load_shed_total',
    help: 'Requests answered 503 by load shedding, by the threshold that was passed.',
    labelNames: ['reason'] as const,
    registers,
  })
  const counters: OutcomeCounters = {
    securityEvents: new Counter({
      name: 'bulwark_security_events_total',
      help: 'Security events recorded in the audit trail (or suppressed from it as a flood), by event name.',
      labelNames: ['event'] as const,
      registers,
    }),
    signIns: new Counter({
      name: 'bulwark_sign_ins_total',
      help: 'Sign-in attempts by outcome: success, failure, throttled, mfa_required, mfa_failed.',
      labelNames: ['outcome'] as const,
      registers,
    }),
    refreshes: new Counter({
      name: 'bulwark_refreshes_total',
      help: 'Refresh-token presentations by outcome: rotated, grace (a racing tab), reuse_detected.',
      labelNames: ['outcome'] as const,
      registers,
    }),
    mailDeliveries: new Counter({
      name: 'bulwark_mail_deliveries_total',
      help: 'Outbox send attempts by outcome: sent, retry (a temporary failure), failed (given up).',
      labelNames: ['outcome'] as const,
      registers,
    }),
  }

  const queryObserver: QueryObserver = () => {
    queriesInFlight++
    const started = performance.now()
    return function querySettled({ command, text, error }) {
      queriesInFlight--
      const seconds = (performance.now() - started) / 1000
      queryDuration.observe({ command: commandOf(command, text), outcome: outcomeOf(error) }, seconds)
    }
  }

  return {
    registry,
    /** Counts one request until its response closes (sent or abandoned). */
    requestStarted(): void {
      requestsInFlight++
    },
    requestClosed(): void {
      requestsInFlight--
    },
    requestAnswered(method: string, route: string | undefined, status: number, elapsedMs: number): void {
      const labels = {
        method: methodOf(method),
        route: route ?? UNMATCHED_ROUTE,
        status_class: statusClass(status),
      }
      httpDuration.observe(labels, elapsedMs / 1000)
    },
    routerRefused(status: number): void {
      routerRefusals.inc({ status: String(status) })
    },
    rateLimited(limiter: Limiter, route: string | undefined): void {
      rateLimited.inc({ limiter, route: route ?? UNMATCHED_ROUTE })
    },
    shed(reason: string): void {
      shed.inc({ reason })
    },
    /** An audit event (recorded, or suppressed as a flood): see lib/metrics-events.ts. */
    securityEvent(event: string, detail: Readonly<Record<string, unknown>>): void {
      observeSecurityEvent(counters, event, detail)
    },
    refreshRotated(): void {
      counters.refreshes.inc({ outcome: 'rotated' })
    },
    queryObserver,
  }
}

export type Metrics = ReturnType<typeof createMetrics>
