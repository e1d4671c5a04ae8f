import t from 'tap'
import { createDeviceCookieCodec } from '../../lib/device-cookie.js'

/** Device cookies: signed, bound to an account and its password, and bounded in age on the server. */

const USER = '3f2b8c1e-9a4d-4e7b-8c2a-1d5e6f708192'
const OTHER = '7c1d2e3f-4a5b-4c6d-8e7f-90a1b2c3d4e5'
const HASH = '$bw1$$2b$12$abcdefghijklmnopqrstuv'

t.test('a cookie names its device only for its account, its password and within its age', async (t) => {
  const codec = createDeviceCookieCodec('s'.repeat(40), 3600)
  const now = Date.now()
  const value = codec.issue(USER, HASH, undefined, now)
  t.match(value, /^[0-9a-f-]{36}\.[A-Za-z0-9_-]{22}\.[0-9a-z]+\.[A-Za-z0-9_-]{43}$/)
  const id = codec.deviceOf([value], USER, HASH, now)
  t.type(id, 'string')
  t.equal(codec.deviceOf([value], OTHER, HASH, now), null, 'another account')
  t.equal(codec.deviceOf([value], USER, `${HASH}x`, now), null, 'after a password change')
  t.equal(codec.deviceOf([value], USER, HASH, now + 3601_000), null, 'older than its maximum age')
  t.equal(codec.deviceOf([value], USER, HASH, now - 120_000), null, 'from the future')
  const other = createDeviceCookieCodec('t'.repeat(40), 3600)
  t.equal(other.deviceOf([value], USER, HASH, now), null, 'another secret')
  const [u, d, issued, mac] = value.split('.')
  t.equal(
    codec.deviceOf([`${OTHER}.${d}.${issued}.${mac}`], OTHER, HASH, now),
    null,
    'moved to another account',
  )
  t.equal(
    codec.deviceOf(
      [`${u}.${d}.${(Number.parseInt(issued ?? '', 36) + 10).toString(36)}.${mac}`],
      USER,
      HASH,
      now,
    ),
    null,
    'a younger date',
  )
  for (const junk of ['', '...', `${value}.x`, 'a.b.c.d', `${u}.${d}.${issued}.${'A'.repeat(43)}`]) {
    t.equal(codec.deviceOf([junk], USER, HASH, now), null, `junk ${JSON.stringify(junk.slice(0, 20))}`)
  }
  t.equal(codec.deviceOf(['planted', value], USER, HASH, now), id, 'a planted twin does not hide it')
  const renewed = codec.issue(USER, HASH, id ?? undefined, now)
  t.equal(codec.deviceOf([renewed], USER, HASH, now), id, 'a renewed cookie keeps the device id')
})
