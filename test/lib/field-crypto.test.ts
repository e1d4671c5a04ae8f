import t from 'tap'
import { createFieldCipher, DecryptionError, normalizeEmail, parseDataKeys } from '../../lib/field-crypto.js'
import { TEST_DATA_KEYS } from '../helper.js'

const key = (n: number) => Buffer.alloc(32, n).toString('base64')
const at = { table: 'users', column: 'email', rowId: '00000000-0000-4000-8000-000000000001' }

t.test('a value decrypts only where it was encrypted: same table, column and row', async (t) => {
  const cipher = createFieldCipher(TEST_DATA_KEYS)
  const stored = cipher.encrypt('alice@example.com', at)
  t.match(stored, /^enc:v1:t1:[A-Za-z0-9_-]+$/, 'the key id is part of the stored value')
  t.not(stored, cipher.encrypt('alice@example.com', at), 'a fresh nonce every time')
  t.notMatch(stored, /alice/)
  t.equal(cipher.decrypt(stored, at), 'alice@example.com')
  t.throws(
    () => cipher.decrypt(stored, { ...at, rowId: '00000000-0000-4000-8000-000000000002' }),
    DecryptionError,
  )
  t.throws(() => cipher.decrypt(stored, { ...at, column: 'user_agent' }), DecryptionError)
  t.throws(() => cipher.decrypt(stored, { ...at, table: 'sessions' }), DecryptionError)
  // Opened values are remembered by place and stored form: a remembered one moved elsewhere still fails.
  t.equal(cipher.decrypt(stored, at), 'alice@example.com', 'opened again (remembered)')
  t.throws(
    () => cipher.decrypt(stored, { ...at, rowId: '00000000-0000-4000-8000-000000000003' }),
    DecryptionError,
  )
  for (let i = 0; i < 5000; i++) {
    const place = { ...at, rowId: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}` }
    if (cipher.decrypt(cipher.encrypt(`u${i}@example.com`, place), place) !== `u${i}@example.com`)
      t.fail(`value ${i}`)
  }
  t.equal(cipher.decrypt(stored, at), 'alice@example.com', 'opened once more after the memory turned over')
})

t.test('tampered, truncated, plaintext and unknown-key values fail closed', async (t) => {
  const cipher = createFieldCipher(TEST_DATA_KEYS)
  const stored = cipher.encrypt('203.0.113.9', at)
  const body = stored.slice('enc:v1:t1:'.length)
  const flipped = `${body.slice(0, 20)}${body[20] === 'A' ? 'B' : 'A'}${body.slice(21)}`
  t.throws(() => cipher.decrypt(`enc:v1:t1:${flipped}`, at), DecryptionError, 'one changed character')
  t.throws(() => cipher.decrypt('enc:v1:t1:AAAA', at), DecryptionError, 'too short')
  t.throws(() => cipher.decrypt('203.0.113.9', at), DecryptionError, 'plaintext is never taken as data')
  t.throws(() => cipher.decrypt(`enc:v1:zz:${body}`, at), DecryptionError, 'a key id we do not hold')
  t.equal(cipher.decrypt(null, at), null)
})

t.test('the first key encrypts, every listed key decrypts (rotation)', async (t) => {
  const before = createFieldCipher({ DATA_ENCRYPTION_KEYS: `k1:${key(1)}`, DATA_INDEX_KEY: key(9) })
  const after = createFieldCipher({
    DATA_ENCRYPTION_KEYS: `k2:${key(2)},k1:${key(1)}`,
    DATA_INDEX_KEY: key(9),
  })
  const old = before.encrypt('Mozilla/5.0', at)
  t.equal(after.decrypt(old, at), 'Mozilla/5.0')
  t.equal(after.keyIdOf(old), 'k1')
  t.equal(after.keyIdOf(after.encrypt('x', at)), 'k2')
  t.equal(after.keyIdOf('plain text'), null)
  t.same(after.blindIndex('a@b.c'), before.blindIndex('a@b.c'), 'the index key is separate: lookups survive')
})

t.test('blind indexes are keyed and see one address however it is typed', async (t) => {
  const cipher = createFieldCipher(TEST_DATA_KEYS)
  const other = createFieldCipher({ ...TEST_DATA_KEYS, DATA_INDEX_KEY: key(7) })
  t.same(cipher.blindIndex(normalizeEmail(' Alice@Example.COM ')), cipher.blindIndex('alice@example.com'))
  t.notSame(other.blindIndex('alice@example.com'), cipher.blindIndex('alice@example.com'))
  t.equal(cipher.blindIndex('alice@example.com').length, 32)
})

t.test('malformed key settings are refused, naming the setting and never a key', async (t) => {
  const bad = [
    ['', key(1)],
    [`k1:${Buffer.alloc(16).toString('base64')}`, key(1)],
    [`k1:${key(1)},k1:${key(2)}`, key(1)],
    [`bad id:${key(1)}`, key(1)],
    [`k1:${key(1)}:extra`, key(1)],
  ]
  for (const [keys = '', index = ''] of bad) {
    t.throws(() => parseDataKeys(keys, index), { message: /^DATA_ENCRYPTION_KEYS must/ }, keys)
  }
  t.throws(() => parseDataKeys(`k1:${key(1)}`, 'c2hvcnQ='), { message: /^DATA_INDEX_KEY must/ })
  t.doesNotThrow(() => parseDataKeys(`k1:${key(1)}`, key(3)))
})
