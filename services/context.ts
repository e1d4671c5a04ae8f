import type { Sql } from 'postgres'
import type { CounterStore } from '../lib/counter-store.js'
import type { CursorCodec } from '../lib/cursor.js'
import type { DeviceCookieCodec } from '../lib/device-cookie.js'
import type { FieldCipher, Origin } from '../lib/field-crypto.js'
import type { AccessClaims } from '../schemas/auth.js'
import type { Config } from '../schemas/env.js'
import type { Audit } from './audit.js'
import type { ThrottleContext } from './login-throttle.js'

/**
 * What a service receives for one call (built per request by plugins/app/service-context.ts, or by
 * the CLI): the database, settings and request facts, never a Fastify request or reply. Each
 * service declares the part it uses with Pick<>.
 */
export interface ServiceContext {
  sql: Sql
  config: Readonly<Config>
  /** Encrypts and decrypts personal data at rest, and makes blind indexes (lib/field-crypto.ts). */
  cipher: FieldCipher
  cursors: CursorCodec
  /** Signs an access token (iss, aud, exp and the key are the JWT plugin's). */
  sign: (claims: AccessClaims) => string
  /** Writes an audit event bound to this request's address, user agent and request id. */
  audit: Audit
  origin: Origin
  /** Sign-in limits; `client` is the caller's rate-limit identity, `device` its verified device cookie. */
  throttle?: ThrottleContext
  /** Issues and reads device cookies (OWASP device cookies). */
  devices: DeviceCookieCodec
  /** Fixed-window counters shared by the replicas (per-account mail and token limits). */
  counters: CounterStore
}
