import { isIP } from 'node:net'
import type { Config } from '../schemas/env.js'
import { isLocalHost } from './db-tls.js'

/** The passkey settings: defaults filled in and checked once at boot (lib/config.ts). */

/** The origin a development browser runs the app on when WEBAUTHN_ORIGINS is unset. */
export const DEV_WEBAUTHN_ORIGIN = 'http://localhost:3000'

type WebauthnSettings = Pick<Config, 'WEBAUTHN_ORIGINS' | 'WEBAUTHN_RP_ID'>

/**
 * Fills WEBAUTHN_ORIGINS (unset: the development origin outside production, off in production, where
 * the RP ID that every credential is bound to for good is chosen on purpose; `none`: off) and
 * WEBAUTHN_RP_ID (the first origin's host). Returns the first problem, or null.
 */
export function resolveWebauthn(config: WebauthnSettings, production: boolean): string | null {
  let origins = config.WEBAUTHN_ORIGINS
  if (origins.length === 1 && origins[0] === 'none') origins = []
  else if (origins.length === 0 && !production) origins = [DEV_WEBAUTHN_ORIGIN]
  config.WEBAUTHN_ORIGINS = origins
  if (origins.length === 0) return null
  for (const origin of origins) {
    // An exact origin: what clientDataJSON.origin carries, compared as a string (WebAuthn L3 §13.4.9).
    const shape = /^https?:\/\/[a-z0-9.-]+(:\d{1,5})?$/.test(origin)
    if (!shape || !URL.canParse(origin) || new URL(origin).origin !== origin) {
      return 'WEBAUTHN_ORIGINS is invalid: each entry must be an exact origin like https://app.example.com (no path, no trailing slash)'
    }
    const { protocol, hostname } = new URL(origin)
    // Ceremonies need a secure context; plain http only for this machine, and only outside production.
    if (protocol === 'http:' && (production || !isLocalHost(hostname))) {
      return 'WEBAUTHN_ORIGINS is invalid: use https:// (http:// only for localhost outside production)'
    }
  }
  const first = new URL(origins[0] as string).hostname
  const rpId = (config.WEBAUTHN_RP_ID ?? first).toLowerCase()
  // The RP ID is a registrable domain suffix of each origin's host, never an IP address (WebAuthn L3 §5.1.3).
  if (isIP(rpId.replace(/^\[|\]$/g, '')) !== 0) {
    return 'WEBAUTHN_RP_ID is invalid: must be a domain name, not an IP address (use localhost for development)'
  }
  for (const origin of origins) {
    const host = new URL(origin).hostname
    if (host !== rpId && !host.endsWith(`.${rpId}`)) {
      return `WEBAUTHN_ORIGINS is invalid: the host of ${origin} is neither WEBAUTHN_RP_ID (${rpId}) nor a subdomain of it`
    }
  }
  config.WEBAUTHN_RP_ID = rpId
  return null
}

/** Whether passkeys are on: an origin to run ceremonies on (and so an RP ID). */
export const passkeysEnabled = (config: WebauthnSettings): boolean => config.WEBAUTHN_ORIGINS.length > 0
