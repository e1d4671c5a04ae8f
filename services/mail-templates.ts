import type { Config } from '../schemas/env.js'

/**
 * The mails the service sends: subject, plain text and HTML from one set of words. Every value put
 * into HTML is escaped (OWASP ASVS 5.0 1.2.1); links carry tokens in the fragment, which browsers
 * never send to a server and gateways never log (RFC 3986 §3.5).
 */

interface Named {
  username: string
}
interface Linked extends Named {
  token: string
  expiresInSeconds: number
}

/** What each template needs. */
export interface MailData {
  'verify-email': Linked
  'registration-attempt': Named
  'password-reset': Linked
  'email-change-verify': Linked
  'email-change-attempt': Named
  'email-changed': Named & { newEmail: string }
  'password-changed': Named
  'password-reset-done': Named
  'mfa-enabled': Named
  'mfa-disabled': Named
  'recovery-code-used': Named & { left: number }
  'new-sign-in': Named & { at: string; ip: string | null; userAgent: string | null }
  'sessions-revoked': Named & { disabled: boolean }
  // API keys (issue 16).
  'api-key-created': Named & { name: string; prefix: string; scopes: string }
  'passkey-added': Named & { name: string }
  'passkey-removed': Named & { name: string }
}
export type MailTemplate = keyof MailData

export interface RenderedMail {
  subject: string
  text: string
  html: string
}

type Settings = Pick<Config, 'PUBLIC_APP_URL' | 'PORT' | 'MFA_TOTP_ISSUER'>

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
}
export const escapeHtml = (value: string) => value.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c)

/** A link into the app: the token after `#`, never in the query string. */
export function appLink(config: Settings, path: string, token: string): string {
  const base = (config.PUBLIC_APP_URL ?? `http://localhost:${config.PORT}`).replace(/\/+$/, '')
  return `${base}${path}#token=${encodeURIComponent(token)}`
}

const hours = (seconds: number) =>
  seconds >= 3600 ? `${Math.round(seconds / 3600)} hour(s)` : `${Math.round(seconds / 60)} minutes`

/** One paragraph of words, or a link with its label. */
type Part = string | { link: string; label: string }

const NOT_YOU =
  'If this was not you, change your password now and review your sessions; if you cannot sign in, reset your password.'

/** The words of each mail, in parts; rendering turns them into text and escaped HTML. */
function compose(
  template: MailTemplate,
  data: MailData[MailTemplate],
  config: Settings,
): { subject: string; parts: Part[] } {
  const d = data as MailData[MailTemplate] &
    Partial<
      Linked & {
        newEmail: string
        left: number
        at: string
        ip: string | null
        userAgent: string | null
        disabled: boolean
        name: string
      }
    >
  const linked = (path: string, label: string): Part[] => [
    { link: appLink(config, path, d.token ?? ''), label },
    `The link works once and expires in ${hours(d.expiresInSeconds ?? 0)}.`,
  ]
  switch (template) {
    case 'verify-email':
      return {
        subject: 'Confirm your email address',
        parts: [
          'Please confirm that this is your email address:',
          ...linked('/verify-email', 'Confirm my address'),
          'If you did not create an account, ignore this mail.',
        ],
      }
    case 'registration-attempt':
      return {
        subject: 'Someone tried to register with your address',
        parts: [
          'Someone tried to create a new account with this email address, which already has one. No account was created.',
          'If this was you, sign in instead, or reset your password if you forgot it. Otherwise ignore this mail.',
        ],
      }
    case 'password-reset':
      return {
        subject: 'Reset your password',
        parts: [
          'Someone (hopefully you) asked to reset your password. To choose a new one:',
          ...linked('/reset-password', 'Reset my password'),
          'If you did not ask, ignore this mail: your password stays as it is.',
        ],
      }
    case 'email-change-verify':
      return {
        subject: 'Confirm your new email address',
        parts: [
          'Please confirm that this address should become the email address of your account:',
          ...linked('/verify-email', 'Confirm my new address'),
          'If you did not ask for this, ignore this mail.',
        ],
      }
    case 'email-change-attempt':
      return {
        subject: 'Someone tried to use your address for another account',
        parts: [
          'Someone asked to move another account to this email address, which already has an account. Nothing was changed.',
          'If this was not you, ignore this mail.',
        ],
      }
    case 'email-changed':
      return {
        subject: 'Your email address was changed',
        parts: [
          `The email address of your account is now ${d.newEmail}. Mail about your account goes there from now on.`,
          NOT_YOU,
        ],
      }
    case 'password-changed':
      return {
        subject: 'Your password was changed',
        parts: [
          'The password of your account was changed, and your other sessions were signed out.',
          NOT_YOU,
        ],
      }
    case 'password-reset-done':
      return {
        subject: 'Your password was reset',
        parts: [
          'The password of your account was reset through a link sent to this address, and every session was signed out.',
          NOT_YOU,
        ],
      }
    case 'mfa-enabled':
      return {
        subject: 'Two-factor authentication is on',
        parts: [
          'Two-factor authentication was turned on for your account. Keep your recovery codes somewhere safe.',
          NOT_YOU,
        ],
      }
    case 'mfa-disabled':
      return {
        subject: 'Two-factor authentication is off',
        parts: [
          'Two-factor authentication was turned off for your account, and your other sessions were signed out.',
          NOT_YOU,
        ],
      }
    case 'recovery-code-used':
      return {
        subject: 'A recovery code was used',
        parts: [
          `A recovery code of your account was used (to sign in, to confirm a sensitive action, or to reset the password). ${d.left} code(s) are left${d.left === 0 ? ': create new ones now' : ''}.`,
          NOT_YOU,
        ],
      }
    case 'passkey-added':
      return {
        subject: 'A passkey was added to your account',
        parts: [`A passkey named "${d.name}" was added to your account: it can sign in on its own.`, NOT_YOU],
      }
    case 'passkey-removed':
      return {
        subject: 'A passkey was removed from your account',
        parts: [`The passkey named "${d.name}" was removed from your account.`, NOT_YOU],
      }
    case 'new-sign-in':
      return {
        subject: 'New sign-in to your account',
        parts: [
          'Your account was signed in to from a device or browser not seen before.',
          `Time: ${d.at}`,
          `Address: ${d.ip ?? 'unknown'}`,
          `Browser: ${d.userAgent ?? 'unknown'}`,
          NOT_YOU,
        ],
      }
    case 'sessions-revoked':
      return {
        subject: d.disabled ? 'Your account was disabled' : 'You were signed out',
        parts: d.disabled
          ? [
              'An administrator disabled your account and signed out every session of it.',
              'If you did not expect this, contact your administrator.',
            ]
          : [
              'An administrator changed the role of your account, which signed out every session of it.',
              'Sign in again to continue. If you did not expect this, contact your administrator.',
            ],
      }
    case 'api-key-created': {
      const k = data as MailData['api-key-created']
      return {
        subject: 'A new API key was created',
        parts: [
          `An API key was created for your account: "${k.name}" (${k.prefix}), with the scopes ${k.scopes}.`,
          'You can revoke it at once with DELETE /api/auth/api-keys/:id.',
          NOT_YOU,
        ],
      }
    }
  }
}

/** The mail for a template and its data: subject, text, and HTML with every value escaped. */
export function renderMail<T extends MailTemplate>(
  template: T,
  data: MailData[T],
  config: Settings,
): RenderedMail {
  const { subject, parts } = compose(template, data, config)
  const greeting = `Hello ${data.username},`
  const signature = `— ${config.MFA_TOTP_ISSUER}`
  const text = [
    greeting,
    ...parts.map((p) => (typeof p === 'string' ? p : `${p.label}: ${p.link}`)),
    signature,
  ].join('\n\n')
  const paragraphs = [greeting, ...parts, signature].map((p) =>
    typeof p === 'string'
      ? `<p>${escapeHtml(p)}</p>`
      : `<p><a href="${escapeHtml(p.link)}">${escapeHtml(p.label)}</a></p>`,
  )
  const html = `<!doctype html>\n<html><head><meta charset="utf-8"><title>${escapeHtml(subject)}</title></head><body>\n${paragraphs.join('\n')}\n</body></html>\n`
  return { subject: `${config.MFA_TOTP_ISSUER}: ${subject}`, text: `${text}\n`, html }
}
