import type { CounterStore } from '../lib/counter-store.js'
import { rateLimited } from '../lib/errors.js'
import type { Config } from '../schemas/env.js'

/** Login limits: attempts per address and failures per account. */

export type LoginLimits = Pick<
  Config,
  | 'LOGIN_RATE_LIMIT_MAX'
  | 'LOGIN_RATE_LIMIT_WINDOW_MS'
  | 'LOGIN_ACCOUNT_MAX_FAILURES'
  | 'LOGIN_ACCOUNT_WINDOW_MS'
>

/**
 * Two limits guard login (OWASP ASVS 6.3.1, OWASP Credential Stuffing cheat sheet): attempts per
 * client address, and failures per account across all addresses, so a botnet cannot grind one
 * account. Both windows expire on their own: no permanent lockout for anyone to trigger.
 *
 * The account budget is reserved atomically before the password is checked (an increment, not a
 * read), so attempts racing through the bcrypt window cannot all pass; a successful login gives
 * its reservation back. It is keyed by the account itself, so the username and the email share one
 * budget, and by the typed name for unknown accounts, which answer the same way.
 */
export function createLoginThrottle(store: CounterStore, limits: LoginLimits) {
  const accountKey = (account: string) => `login:account:${account}`
  return {
    async admitClient(client: string): Promise<void> {
      const perClient = await store.increment(`login:ip:${client}`, limits.LOGIN_RATE_LIMIT_WINDOW_MS)
      if (perClient.count > limits.LOGIN_RATE_LIMIT_MAX) {
        throw rateLimited('Too many login attempts from this address. Try again later.', {
          max: limits.LOGIN_RATE_LIMIT_MAX,
          resetMs: perClient.ttlMs,
        })
      }
    },
    async reserveAccount(account: string): Promise<void> {
      const attempts = await store.increment(accountKey(account), limits.LOGIN_ACCOUNT_WINDOW_MS)
      if (attempts.count > limits.LOGIN_ACCOUNT_MAX_FAILURES) {
        throw rateLimited('Too many failed logins for this account. Try again later.', {
          max: limits.LOGIN_ACCOUNT_MAX_FAILURES,
          resetMs: attempts.ttlMs,
        })
      }
    },
    async release(account: string): Promise<void> {
      await store.decrement(accountKey(account))
    },
  }
}

export type LoginThrottle = ReturnType<typeof createLoginThrottle>
