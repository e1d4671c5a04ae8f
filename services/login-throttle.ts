import type { CounterStore } from '../lib/counter-store.js'
import type { DeviceCookieCodec } from '../lib/device-cookie.js'
import { rateLimited } from '../lib/errors.js'
import type { Config } from '../schemas/env.js'

/** Sign-in limits: attempts per address, and failures per account or per trusted device. */

export type LoginLimits = Pick<
  Config,
  | 'LOGIN_RATE_LIMIT_MAX'
  | 'LOGIN_RATE_LIMIT_WINDOW_MS'
  | 'LOGIN_ACCOUNT_MAX_FAILURES'
  | 'LOGIN_ACCOUNT_WINDOW_MS'
  | 'LOGIN_DEVICE_MAX_FAILURES'
>

/**
 * Whose failure budget an attempt spends: a trusted device's own (its device cookie names this
 * account), else the account's, which every unknown client shares.
 */
export interface Budget {
  account: string
  device?: string | undefined
}

/**
 * Limits guard every check of a secret (OWASP ASVS 6.3.1, OWASP Credential Stuffing cheat sheet):
 * attempts per client address, and failures per account across all addresses, so a botnet cannot
 * grind one account. Both windows expire on their own: no permanent lockout for anyone to trigger.
 *
 * Device cookies (OWASP "device cookies") keep that lockout from being turned against the owner: a
 * client that signed in to the account before has its own failure budget and is not stopped by
 * the account's, which only unknown clients spend.
 *
 * A budget is reserved atomically before the secret is checked (an increment, not a read), so
 * attempts racing through the bcrypt window cannot all pass; a success gives its reservation back.
 */
export function createLoginThrottle(store: CounterStore, limits: LoginLimits) {
  const keyOf = (budget: Budget) =>
    budget.device ? `login:device:${budget.device}` : `login:account:${budget.account}`
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
    async reserve(budget: Budget): Promise<void> {
      const max = budget.device ? limits.LOGIN_DEVICE_MAX_FAILURES : limits.LOGIN_ACCOUNT_MAX_FAILURES
      const attempts = await store.increment(keyOf(budget), limits.LOGIN_ACCOUNT_WINDOW_MS)
      if (attempts.count > max) {
        const on = budget.device ? 'from this device' : 'for this account'
        throw rateLimited(`Too many failed sign-ins ${on}. Try again later.`, {
          max,
          resetMs: attempts.ttlMs,
        })
      }
    },
    async release(budget: Budget): Promise<void> {
      await store.decrement(keyOf(budget))
    },
    /**
     * Wrong second-factor codes also spend a budget of the account that no device cookie replaces
     * (NIST SP 800-63B-4 §3.2.2): only a holder of the password reaches the code step, so only
     * they can spend it, and stockpiled device cookies do not multiply guesses at the code.
     */
    async reserveCode(userId: string): Promise<void> {
      const attempts = await store.increment(`login:codes:${userId}`, limits.LOGIN_ACCOUNT_WINDOW_MS)
      if (attempts.count > limits.LOGIN_ACCOUNT_MAX_FAILURES) {
        throw rateLimited('Too many wrong two-factor codes for this account. Try again later.', {
          max: limits.LOGIN_ACCOUNT_MAX_FAILURES,
          resetMs: attempts.ttlMs,
        })
      }
    },
    async releaseCode(userId: string): Promise<void> {
      await store.decrement(`login:codes:${userId}`)
    },
  }
}

export type LoginThrottle = ReturnType<typeof createLoginThrottle>

/** What a request brings to the limits: the limiter, its address key and the device cookies it sent. */
export interface ThrottleContext {
  limiter: LoginThrottle
  client: string
  /** Every value of the device cookie in the request (unverified; a planted twin cannot hide ours). */
  deviceCookies: readonly string[]
  devices: DeviceCookieCodec
}

/**
 * The budget of an attempt on an account (by its id when it exists, else by the name typed, so
 * unknown names answer alike): the device's when its cookie was issued to this very account under
 * its current password.
 */
export function budgetOf(
  throttle: ThrottleContext | undefined,
  user: { id: string; passwordHash: string } | undefined,
  name = '',
): Budget {
  const account = user ? `user:${user.id}` : `name:${name.trim().toLowerCase()}`
  const device = user && throttle?.devices.deviceOf(throttle.deviceCookies, user.id, user.passwordHash)
  return { account, device: device ?? undefined }
}

/** Runs `check` (a password or code comparison) on `budget`: reserved first, given back on success. */
export async function checkWithinBudget(
  throttle: ThrottleContext | undefined,
  budget: Budget,
  check: () => Promise<boolean>,
): Promise<boolean> {
  await throttle?.limiter.reserve(budget)
  const ok = await check()
  if (ok) await throttle?.limiter.release(budget)
  return ok
}
