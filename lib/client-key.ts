import type { IncomingMessage } from 'node:http'
import { isIP } from 'node:net'
import proxyAddr from '@fastify/proxy-addr'
import ipaddr from 'ipaddr.js'

/** The rate-limit identity of a client address (ports stripped, IPv4-mapped folded, IPv6 by /64). */

/** "1.2.3.4:5678" and "[2001:db8::1]:443": a forwarded address may carry a port or brackets. */
const WITH_PORT = /^\[([^\]]+)\](?::\d+)?$|^(\d+\.\d+\.\d+\.\d+):\d+$/

/**
 * The rate-limit identity of an address: IPv4 as is (also when IPv4-mapped, in any spelling), IPv6
 * grouped by its /64, since one client usually holds a whole /64 and could rotate through it
 * (RFC 6177; OWASP ASVS 5.0 2.4.1 and 6.3.1). Anything that is not an address is returned as is.
 */
export function clientKey(raw: string): string {
  // The port is not part of the client, or each source port would get a fresh budget.
  const match = WITH_PORT.exec(raw)
  const host = match?.[1] ?? match?.[2] ?? raw
  // node:net decides what is an address (strict RFC 4291 / dotted-quad grammar); ipaddr.js alone
  // also accepts "1.2.3" or "0x7f.1" as IPv4, which would fold distinct strings into one bucket.
  if (isIP(host) === 0) return raw
  const address = ipaddr.parse(host)
  if (address.kind() === 'ipv4') return address.toString()
  const v6 = address as ipaddr.IPv6
  // ::ffff:0:0/96 (RFC 4291 §2.5.5.2) is an IPv4 client seen through a dual-stack socket or gateway.
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address().toString()
  const prefix = v6.parts.slice(0, 4).map((part) => part.toString(16).padStart(4, '0'))
  return `${prefix.join(':')}::/64`
}

/** Whether a peer address is one of TRUST_PROXY's gateways (the test Fastify applies to X-Forwarded-For). */
export function trustedProxies(trustProxy: readonly string[]): (address: string, hop: number) => boolean {
  return trustProxy.length > 0 ? proxyAddr.compile([...trustProxy]) : () => false
}

/**
 * The client's address as `request.ip` gives it, for the few places that only see the raw request
 * (the router's early answers): X-Forwarded-For counts only when sent by a TRUST_PROXY gateway.
 */
export function clientAddressOf(trustProxy: readonly string[]): (req: IncomingMessage) => string {
  const trusted = trustedProxies(trustProxy)
  return (req) => proxyAddr(req, trusted)
}

/** A route's limit per client address (@fastify/rate-limit route config): `max` requests per `timeWindow` ms. */
export const perAddressLimit = (max: number, timeWindow: number) => ({
  rateLimit: { keyGenerator: (request: { ip: string }) => `ip:${clientKey(request.ip)}`, max, timeWindow },
})
