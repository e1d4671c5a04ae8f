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
