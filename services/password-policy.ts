import { type FieldError, invalidField, invalidFields, unavailable } from '../lib/errors.js'
import { blocklist, blocklistKey } from '../lib/password-blocklist.js'
import { BreachCheckUnavailable, breachCount } from '../lib/pwned-passwords.js'
import { MAX_PASSWORD_LENGTH } from '../schemas/auth.js'
import type { ServiceContext } from './context.js'
import { normalizePassword } from './passwords.js'

/**
 * The rules a password must meet when it is set (registration, change, the CLI): length, a
 * blocklist, context words and, when configured, a breach-corpus range check. Nothing else: no
 * composition rules (NIST SP 800-63B-4 §3.1.1.2, OWASP ASVS 5.0 6.2.5). Sign-in never applies them,
 * so an older password that breaks a newer rule still works until it is changed.
 */

type PolicyContext = Pick<ServiceContext, 'config' | 'audit'>

/** Who the password is for: their own names are guessable words for it (ASVS 5.0 6.2.11). */
export interface PasswordOwner {
  username: string
  email: string
  /** Known once the account exists (a change), for the audit trail. */
  userId?: string
}

/** The service's own name, a context word for every account (NIST SP 800-63B-4 §3.1.1.2). */
export const SERVICE_NAME = 'bulwark'
/** Shorter words are left out: "contains `ann`" would refuse half the dictionary, not guessable passwords. */
export const MIN_CONTEXT_WORD = 4

/** Lone surrogates cannot be encoded as UTF-8: two different strings would hash alike. */
const LONE_SURROGATE = /\p{Surrogate}/u

/** The local rules a password breaks, each as the message that names it; none means it passes. */
export function passwordProblems(password: string, minLength: number, owner: PasswordOwner): string[] {
  if (LONE_SURROGATE.test(password)) return ['must be valid Unicode text']
  // ASVS 5.0 6.2.1/6.2.9: counted in code points after NFKC, so one visible password has one length.
  const length = [...normalizePassword(password)].length
  const problems: string[] = []
  if (length < minLength) problems.push(`must be at least ${minLength} characters`)
  if (length > MAX_PASSWORD_LENGTH) problems.push(`must be at most ${MAX_PASSWORD_LENGTH} characters`)
  const key = blocklistKey(password)
  // Nothing but spaces and invisible characters, or one character repeated: the most guessable of all.
  if (new Set(key).size <= 1) problems.push('is one character repeated or only spaces')
  else if (blocklist().has(key)) problems.push('is too common')
  const words: [string, string][] = [
    [owner.username, 'contains your username'],
    [owner.email.split('@')[0] ?? '', 'contains the first part of your email address'],
    [SERVICE_NAME, 'contains the name of this service'],
  ]
  for (const [word, message] of words) {
    const folded = blocklistKey(word)
    if ([...folded].length >= MIN_CONTEXT_WORD && key.includes(folded)) problems.push(message)
  }
  return problems
}

/**
 * Throws a 400 naming every broken rule of the field at `path`, or — the local rules passed and
 * PWNED_PASSWORDS_URL is set — when the password is in the breach corpus. An unreachable corpus is
 * audited, then passes (PWNED_PASSWORDS_FAIL_OPEN) or is a 503.
 */
export async function assertAcceptablePassword(
  ctx: PolicyContext,
  password: string,
  owner: PasswordOwner,
  path: string,
): Promise<void> {
  const problems = passwordProblems(password, ctx.config.PASSWORD_MIN_LENGTH, owner)
  if (problems.length > 0) {
    throw invalidFields(problems.map((message): FieldError => ({ path, message })))
  }
  const url = ctx.config.PWNED_PASSWORDS_URL
  if (!url) return
  let count: number
  try {
    count = await breachCount(url, normalizePassword(password), ctx.config.PWNED_PASSWORDS_TIMEOUT_MS)
  } catch (error) {
    if (!(error instanceof BreachCheckUnavailable)) throw error
    const failOpen = ctx.config.PWNED_PASSWORDS_FAIL_OPEN
    await ctx.audit('auth.password.breach_check_unavailable', owner.userId ?? null, {
      reason: error.message,
      failOpen,
    })
    if (failOpen) return
    throw unavailable(
      'service-unavailable',
      'The breached-password check is unavailable. Try again later.',
      30,
    )
  }
  if (count > 0) throw invalidField(path, 'has appeared in a data breach')
}
