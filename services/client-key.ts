import { isIPv4, isIPv6 } from 'node:net'

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
export function clientKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  if (mapped?.[1] && isIPv4(mapped[1])) return mapped[1]
  if (!isIPv6(ip)) return ip
  return `${hextets(ip.split('%')[0] ?? ip)
    .slice(0, 4)
    .join(':')}::/64`
}
