import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { BlockList, isIP } from 'node:net'
import { type ConnectionOptions, checkServerIdentity } from 'node:tls'
import type { Config } from '../schemas/env.js'

/** TLS to PostgreSQL and Redis: sslmode with libpq's meaning, private CAs, and the production rule. */

/** The sslmode values libpq knows, weakest first. */
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const
export type SslMode = (typeof SSL_MODES)[number]
/** Modes under which the connection is always encrypted (allow and prefer may fall back to plaintext). */
const ENCRYPTED: readonly SslMode[] = ['require', 'verify-ca', 'verify-full']

/** What postgres.js takes as its `ssl` option. */
export type PostgresSsl = false | 'allow' | 'prefer' | 'require' | ConnectionOptions

type TransportSettings = Pick<
  Config,
  | 'DATABASE_URL'
  | 'DATABASE_MIGRATION_URL'
  | 'DATABASE_CA_FILE'
  | 'DATABASE_TLS'
  | 'REDIS_URL'
  | 'REDIS_CA_FILE'
  | 'REDIS_TLS'
>

/** Why a URL's TLS parameters are refused: postgres.js would read `ssl` and `sslrootcert` otherwise. */
const SSLMODE_RULE = `sslmode must be one of ${SSL_MODES.join(', ')} (ssl= and sslrootcert= are not read: use DATABASE_CA_FILE)`

/**
 * The sslmode of a PostgreSQL URL ('disable' when absent), or null when it is unknown, repeated, or
 * joined by `ssl`/`sslrootcert`, which would otherwise mean something different from what is applied.
 */
export function sslMode(url: string): SslMode | null {
  const query = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1).split('#')[0] : '')
  if (query.has('ssl') || query.has('sslrootcert')) return null
  const values = query.getAll('sslmode')
  if (values.length === 0) return 'disable'
  const [mode] = values
  return values.length === 1 && SSL_MODES.includes(mode as SslMode) ? (mode as SslMode) : null
}

/**
 * The hosts a PostgreSQL URL names, parsed as postgres.js does (several comma-separated, each with an
 * optional port; a percent-encoded path is a Unix socket). An unparsable authority gives [''].
 */
export function postgresHosts(url: string): string[] {
  // Exactly postgres.js's split (parseUrl: cut at ? or /, host after the first @). An authority it
  // could read differently from us (a second @, a #) is unparsable: never taken for loopback.
  const authority = url.slice(url.indexOf('://') + 3).split(/[?/]/)[0] ?? ''
  if (authority.includes('#') || authority.indexOf('@') !== authority.lastIndexOf('@')) return ['']
  let hosts: string
  try {
    hosts = decodeURIComponent(authority.slice(authority.indexOf('@') + 1))
  } catch {
    return ['']
  }
  return hosts
    .split(',')
    .map((entry) =>
      entry.startsWith('[') ? entry.slice(0, entry.indexOf(']') + 1) : (entry.split(':')[0] ?? ''),
    )
}

const LOOPBACK = new BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

const unbracket = (host: string) => host.replace(/^\[(.*)\]$/, '$1')

/** True for traffic that never leaves the machine: 127.0.0.0/8, ::1, localhost, or a Unix socket path. */
export function isLocalHost(host: string): boolean {
  if (host.includes('/')) return true
  const name = unbracket(host).toLowerCase()
  if (name === 'localhost') return true
  const family = isIP(name)
  return family !== 0 && LOOPBACK.check(name, family === 4 ? 'ipv4' : 'ipv6')
}

function redisHost(url: string): string {
  try {
    return new URL(url).hostname
  } catch {
    return ''
  }
}

/** A private CA (PEM): trusting it alone replaces the public roots (ASVS 5.0 12.3.4). */
function readCa(file: string | undefined): Buffer | undefined {
  return file ? readFileSync(file) : undefined
}

/**
 * The postgres.js `ssl` option for a URL, with libpq's sslmode semantics (PostgreSQL docs, "SSL
 * Support", table "SSL Mode Descriptions"). postgres.js alone treats verify-ca as verify-full and
 * knows no CA file. rejectUnauthorized is explicit so NODE_TLS_REJECT_UNAUTHORIZED=0 cannot weaken it.
 */
export function postgresTls(url: string, caFile?: string): PostgresSsl {
  const mode = sslMode(url)
  if (mode === null) throw new Error(SSLMODE_RULE)
  switch (mode) {
    case 'disable':
      return false
    // libpq: these may not encrypt at all and never check the certificate; allowed, never counted as TLS.
    case 'allow':
    case 'prefer':
      return mode
    case 'require': {
      // libpq: with a root CA file, require behaves as verify-ca; without one it encrypts only.
      const ca = readCa(caFile)
      return ca ? { ca, rejectUnauthorized: true, checkServerIdentity: () => undefined } : 'require'
    }
    // ASVS 5.0 12.3.2: the chain is checked against the CA; the host name deliberately is not (verify-ca).
    case 'verify-ca':
      return { ca: readCa(caFile), rejectUnauthorized: true, checkServerIdentity: () => undefined }
    // ASVS 5.0 12.3.2 and RFC 9525: the chain and the host name (SAN) are both checked.
    case 'verify-full':
      return { ca: readCa(caFile), rejectUnauthorized: true, checkServerIdentity: identityCheck(url) }
  }
}

/** Why verify-full cannot check this URL's host names, or null. */
export function verifyFullProblem(url: string): string | null {
  const hosts = postgresHosts(url)
  return sslMode(url) === 'verify-full' && hosts.length > 1 && hosts.some((host) => isIP(unbracket(host)))
    ? 'verify-full with several hosts needs host names, not IP addresses'
    : null
}

/**
 * The host name check for verify-full. postgres.js sends no SNI to an IP address, and Node then checks
 * the certificate against "localhost" instead of that address: so the URL's own host is checked here.
 * With several hosts (host names only, see verifyFullProblem) each is sent as SNI and checked by Node.
 */
function identityCheck(url: string): ConnectionOptions['checkServerIdentity'] {
  const problem = verifyFullProblem(url)
  if (problem) throw new Error(problem)
  const hosts = postgresHosts(url).map(unbracket)
  const [host] = hosts
  return hosts.length === 1 && host !== undefined
    ? (_offered, cert) => checkServerIdentity(host, cert)
    : checkServerIdentity
}

/**
 * ioredis `tls` options: undefined for redis:// (plaintext); for rediss:// the chain and host name
 * are checked (ASVS 5.0 12.3.2), against the private CA when one is given (12.3.4).
 */
export function redisTls(url: string, caFile?: string): ConnectionOptions | undefined {
  if (!url.startsWith('rediss://')) return undefined
  const ca = readCa(caFile)
  return ca ? { ca, rejectUnauthorized: true } : { rejectUnauthorized: true }
}

/** A connection setting that reaches another machine without TLS, and whether its override allows that. */
export interface PlaintextLink {
  setting: 'DATABASE_URL' | 'DATABASE_MIGRATION_URL' | 'REDIS_URL'
  override: 'DATABASE_TLS' | 'REDIS_TLS'
  allowed: boolean
}

/** The configured connections that would carry data in plaintext to a non-loopback host. */
export function plaintextLinks(config: Partial<TransportSettings>): PlaintextLink[] {
  const links: PlaintextLink[] = []
  for (const setting of ['DATABASE_URL', 'DATABASE_MIGRATION_URL'] as const) {
    const url = config[setting]
    const encrypted = url !== undefined && ENCRYPTED.includes(sslMode(url) as SslMode)
    if (url && !encrypted && !postgresHosts(url).every(isLocalHost)) {
      links.push({ setting, override: 'DATABASE_TLS', allowed: config.DATABASE_TLS === 'disable' })
    }
  }
  const redis = config.REDIS_URL
  if (redis && !redis.startsWith('rediss://') && !isLocalHost(redisHost(redis))) {
    links.push({ setting: 'REDIS_URL', override: 'REDIS_TLS', allowed: config.REDIS_TLS === 'disable' })
  }
  return links
}

/** Why the CA file cannot serve as a trust anchor, or null when it holds a PEM certificate. */
function caFileProblem(file: string): string | null {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    // The code only (ENOENT, EACCES, EISDIR): never the file's content.
    return `the file cannot be read (${(error as { code?: string }).code})`
  }
  try {
    new X509Certificate(text)
    return null
  } catch {
    return 'the file holds no PEM certificate'
  }
}

/**
 * The first transport problem in the settings as one operator line naming the variable (never its
 * value), or null. Checked at boot so a bad setting fails there, not at the first query.
 */
export function transportProblem(config: TransportSettings, production: boolean): string | null {
  for (const key of ['DATABASE_URL', 'DATABASE_MIGRATION_URL'] as const) {
    const url = config[key]
    if (url && sslMode(url) === null) return `${key} is invalid: ${SSLMODE_RULE}`
    const hostProblem = url ? verifyFullProblem(url) : null
    if (hostProblem) return `${key} is invalid: ${hostProblem}`
  }
  for (const key of ['DATABASE_CA_FILE', 'REDIS_CA_FILE'] as const) {
    const file = config[key]
    const problem = file ? caFileProblem(file) : null
    if (problem) return `${key} is invalid: ${problem}`
  }
  // ASVS 5.0 12.3.1: in production, data to another machine goes over TLS unless explicitly opted out.
  const refused = production ? plaintextLinks(config).find((link) => !link.allowed) : undefined
  if (!refused) return null
  const needs = refused.setting === 'REDIS_URL' ? 'rediss://' : 'sslmode=require, verify-ca or verify-full'
  return `${refused.setting} is invalid: a non-loopback host needs ${needs} when NODE_ENV=production (or set ${refused.override}=disable)`
}

/** The plaintext connections to other hosts that DATABASE_TLS/REDIS_TLS=disable lets through, for the boot log. */
export function tlsOverrides(config: Partial<TransportSettings>): string[] {
  return plaintextLinks(config)
    .filter((link) => link.allowed)
    .map((link) => `${link.setting} (${link.override}=disable)`)
}
