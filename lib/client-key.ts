import { isIPv4, isIPv6 } from 'node:net'

/** The rate-limit identity of a client address (ports stripped, IPv4-mapped folded, IPv6 by /64). */

/** Expands an IPv6 address to its eight hextets. */
function hextets(ip: string): string[] {
  const [head = '', tail = ''] = ip.split('::')
  const left = head ? head.split(':') : []
  const right = ip.includes('::') && tail ? tail.split(':') : []
  const fill = ip.includes('::') ? Array(8 - left.length - right.length).fill('0') : []
  return [...left, ...fill, ...right].map((h) => h.toLowerCase().padStart(4, '0'))
}

/**
 * The rate-limit identity of an address: IPv4 as is (also when IPv4-mapped), IPv6 grouped by its
 * /64, since one client usually holds a whole /64 and could rotate through it.
 */
export function clientKey(raw: string): string {
  // A forwarded address may carry a port ("1.2.3.4:5678", "[2001:db8::1]:443") or brackets: the
  // port is not part of the client, or each source port would get a fresh budget.
  const ip = /^\[([^\]]+)\](?::\d+)?$/.exec(raw)?.[1] ?? /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(raw)?.[1] ?? raw
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  if (mapped?.[1] && isIPv4(mapped[1])) return mapped[1]
  if (!isIPv6(ip)) return ip
  const groups = hextets(ip.split('%')[0] ?? ip)
  if (groups.slice(0, 6).join(':') === '0000:0000:0000:0000:0000:ffff') {
    // IPv4-mapped in hex form (::ffff:102:304) is the IPv4 address 1.2.3.4.
    const [hi = 0, lo = 0] = groups.slice(6).map((h) => Number.parseInt(h, 16))
    return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.')
  }
  return `${groups.slice(0, 4).join(':')}::/64`
}
