import type { Counter } from 'prom-client'

/**
 * Outcome counters read from the one seam the services already have: the security events they
 * audit (services/audit.ts). The services stay unaware of metrics; this table says which event is
 * which outcome. Event names are literals in the code, so the `event` label is a bounded set.
 */

export interface OutcomeCounters {
  securityEvents: Counter<'event'>
  signIns: Counter<'outcome'>
  refreshes: Counter<'outcome'>
  mailDeliveries: Counter<'outcome'>
}

/** Where a sign-in's password or code is checked: a throttled request there is a throttled sign-in. */
const SIGN_IN_ROUTES = new Set(['/api/auth/login', '/api/auth/mfa/verify'])

type Outcome = readonly [counter: 'signIns' | 'refreshes' | 'mailDeliveries', outcome: string]

/** The outcome an event stands for, if any. */
function outcomeOf(event: string, detail: Readonly<Record<string, unknown>>): Outcome | null {
  switch (event) {
    case 'auth.login.success':
      return ['signIns', 'success']
    case 'auth.login.failure':
      return ['signIns', 'failure']
    case 'auth.login.mfa_required':
      return ['signIns', 'mfa_required']
    case 'auth.mfa.code_failed':
      return detail.stage === 'sign-in' ? ['signIns', 'mfa_failed'] : null
    case 'auth.throttled':
      return SIGN_IN_ROUTES.has(String(detail.route)) ? ['signIns', 'throttled'] : null
    case 'auth.refresh.grace_used':
      return ['refreshes', 'grace']
    case 'auth.refresh.reuse_detected':
      return ['refreshes', 'reuse_detected']
    // The outbox worker's settlements (services/outbox.ts).
    case 'mail.sent':
      return ['mailDeliveries', 'sent']
    case 'mail.retry_scheduled':
      return ['mailDeliveries', 'retry']
    case 'mail.failed':
      return ['mailDeliveries', 'failed']
    default:
      return null
  }
}

/** Counts a security event, and the sign-in, refresh or mail outcome it stands for. */
export function observeSecurityEvent(
  counters: OutcomeCounters,
  event: string,
  detail: Readonly<Record<string, unknown>>,
): void {
  counters.securityEvents.inc({ event })
  const outcome = outcomeOf(event, detail)
  if (outcome) counters[outcome[0]].inc({ outcome: outcome[1] })
}
