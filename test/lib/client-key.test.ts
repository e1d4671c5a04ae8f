import fc from 'fast-check'
import t from 'tap'
import { clientKey } from '../../lib/client-key.js'

t.test('client keys: ports, brackets and mapped forms name the same client; IPv6 by /64', async (t) => {
  const same: [string, string][] = [
    ['5.5.5.5:1234', '5.5.5.5'],
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['::ffff:102:304', '1.2.3.4'],
    ['[2001:db8::9]', '2001:0db8:0000:0000::/64'],
    ['[2001:db8::9]:443', '2001:0db8:0000:0000::/64'],
    ['2001:db8:0:0:ffff::1', '2001:0db8:0000:0000::/64'],
    ['2001:DB8::1', '2001:0db8:0000:0000::/64'],
    ['fe80::1%eth0', 'fe80:0000:0000:0000::/64'],
  ]
  for (const [raw, key] of same) t.equal(clientKey(raw), key, raw)
  t.not(clientKey('2001:db8:0:1::1'), clientKey('2001:db8::1'), 'another /64 is another client')
  t.equal(clientKey('10.0.0.1'), '10.0.0.1')
})

t.test('issue 12 #13: uncompressed IPv4-mapped (0:0:0:0:0:ffff:a.b.c.d) is that IPv4 client', async (t) => {
  // The hand parser read this as 0.1.0.0, so every client behind such a gateway shared one bucket.
  t.equal(clientKey('0:0:0:0:0:ffff:1.2.3.4'), '1.2.3.4')
  t.equal(clientKey('0:0:0:0:0:ffff:5.6.7.8'), '5.6.7.8')
  t.equal(clientKey('0000:0000:0000:0000:0000:FFFF:0102:0304'), '1.2.3.4')
  t.equal(clientKey('[0:0:0:0:0:ffff:1.2.3.4]:8080'), '1.2.3.4')
})

t.test('what is not an address is returned as it is, never parsed leniently', async (t) => {
  // ipaddr.js alone reads "1.2.3" as 1.2.0.3 and "0x7f.0.0.1" as 127.0.0.1.
  for (const raw of [
    '1.2.3',
    '0x7f.0.0.1',
    '010.0.0.1',
    'unknown',
    '',
    '::ffff:1.2.3',
    '[nope]:80',
    '1.2.3.4:x',
  ])
    t.equal(clientKey(raw), raw, JSON.stringify(raw))
})

const octet = fc.integer({ min: 0, max: 255 })
const hextet = fc.integer({ min: 0, max: 0xffff })
const hex = (n: number) => n.toString(16)

/** Every spelling of one IPv4 address a gateway or a dual-stack socket may hand over. */
function ipv4Spellings([a, b, c, d]: number[]): string[] {
  const dotted = `${a}.${b}.${c}.${d}`
  const hi = hex(((a ?? 0) << 8) | (b ?? 0))
  const lo = hex(((c ?? 0) << 8) | (d ?? 0))
  const forms = [
    dotted,
    `${dotted}:5678`,
    `::ffff:${dotted}`,
    `::FFFF:${dotted}`,
    `0:0:0:0:0:ffff:${dotted}`,
    `0000:0000:0000:0000:0000:ffff:${dotted}`,
    `0::ffff:${dotted}`,
    `::ffff:${hi}:${lo}`,
    `0:0:0:0:0:ffff:${hi}:${lo}`,
    `0000:0000:0000:0000:0000:FFFF:${hi.padStart(4, '0')}:${lo.padStart(4, '0')}`.toUpperCase(),
  ]
  return [...forms, ...forms.filter((f) => f.includes(':') && !f.endsWith(':5678')).map((f) => `[${f}]:443`)]
}

t.test('property: every spelling of an IPv4 address, mapped or not, is the same client', async (t) => {
  // fast-check shrinks a failure to the smallest address and reports the spelling that broke.
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(fc.tuple(octet, octet, octet, octet), (parts) => {
        const expected = parts.join('.')
        for (const raw of ipv4Spellings(parts))
          if (clientKey(raw) !== expected) throw new Error(`${raw} -> ${clientKey(raw)}`)
      }),
      { numRuns: 500 },
    ),
  )
})

t.test('property: every spelling of an IPv6 address gives the key of its /64', async (t) => {
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(fc.array(hextet, { minLength: 8, maxLength: 8 }), fc.boolean(), (parts, zeroRun) => {
        // Some addresses get a run of zeros so that "::" compression has something to compress.
        const groups = zeroRun ? [...parts.slice(0, 2), 0, 0, 0, ...parts.slice(5)] : parts
        // The mapped range folds to IPv4 (the previous property); keep it out of this one.
        if (groups.slice(0, 6).join() === '0,0,0,0,0,65535') return true
        const expected = `${groups
          .slice(0, 4)
          .map((g) => hex(g).padStart(4, '0'))
          .join(':')}::/64`
        const full = groups.map(hex).join(':')
        const padded = groups.map((g) => hex(g).padStart(4, '0')).join(':')
        const compressed = full.replace(/(^|:)0(:0)+(:|$)/, '::').replace(/^:::?|:::?$/g, '::')
        const spellings = [
          full,
          padded,
          padded.toUpperCase(),
          compressed,
          `[${compressed}]:443`,
          `${full}%eth0`,
        ]
        for (const raw of spellings)
          if (clientKey(raw) !== expected) throw new Error(`${raw} -> ${clientKey(raw)}`)
        return true
      }),
      { numRuns: 500 },
    ),
  )
})
