import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import fc from 'fast-check'
import t from 'tap'
import { blocklistKey, readBlocklist, SortedKeys, writeFoldedList } from '../../lib/password-blocklist.js'

/** The blocklist's sorted-string form answers exactly as a Set of the same keys would. */

const dir = mkdtempSync(join(tmpdir(), 'blocklist-'))
const listOf = (entries: string[], name = 'list.txt.gz') => {
  const file = join(dir, name)
  writeFileSync(file, gzipSync(entries.join('\n')))
  return file
}

t.test('membership matches a Set of the folded keys, for any entries and any probe', async () => {
  const text = fc.string({
    unit: fc.constantFrom('a', 'B', 'z', ' ', 'é', 'ß', '\u00e9', '\u200b', '😀', '中', '~'),
    maxLength: 6,
  })
  fc.assert(
    fc.property(fc.array(text, { maxLength: 40 }), fc.array(text, { maxLength: 20 }), (entries, probes) => {
      const keys = readBlocklist(join(dir, 'absent.txt'), listOf(entries))
      const expected = new Set(entries.map(blocklistKey).filter((k) => k !== ''))
      if (keys.size !== expected.size) return false
      return [...entries, ...probes].every((p) => keys.has(blocklistKey(p)) === expected.has(blocklistKey(p)))
    }),
    { numRuns: 300, seed: 20261202 },
  )
})

t.test('the empty list holds nothing; one entry is found at either end of a search', async (t) => {
  t.equal(new SortedKeys('').has('a'), false)
  const keys = new SortedKeys('alpha\nbeta\ngamma\n')
  t.equal(keys.size, 3)
  for (const k of ['alpha', 'beta', 'gamma']) t.ok(keys.has(k), k)
  for (const k of ['', 'a', 'alph', 'alphaa', 'delta', 'zeta']) t.notOk(keys.has(k), k)
})

t.test('the folded copy is used only when made from the same list', async (t) => {
  const list = listOf(['Tr0ub4dor', 'correct horse'], 'one.txt.gz')
  const folded = join(dir, 'folded.txt')
  writeFoldedList(folded, list)
  t.ok(readBlocklist(folded, list).has('tr0ub4dor'), 'the copy answers for its own list')
  // The package's list changed (an update): the old copy is stale, and the new list is folded afresh.
  const updated = listOf(['hunter2 hunter2'], 'one.txt.gz')
  const keys = readBlocklist(folded, updated)
  t.notOk(keys.has('tr0ub4dor'), 'a stale copy is not used')
  t.ok(keys.has('hunter2 hunter2'), 'the current list is')
})

t.test('a folded copy that was cut or edited is not used: the list is folded again', async (t) => {
  const list = listOf(['password', 'letmein', 'qwerty'], 'cut.txt.gz')
  const folded = join(dir, 'cut-folded.txt')
  writeFoldedList(folded, list)
  const whole = readFileSync(folded, 'latin1')
  // Nothing but the header (an interrupted write, a full disk) would accept every password.
  writeFileSync(folded, whole.slice(0, whole.indexOf('\n') + 1), 'latin1')
  t.ok(readBlocklist(folded, list).has('password'), 'a header-only copy is refused')
  writeFileSync(folded, whole.replace('letmein\n', ''), 'latin1')
  t.ok(readBlocklist(folded, list).has('letmein'), 'a copy with an entry removed is refused')
  writeFileSync(folded, whole.slice(0, -3), 'latin1')
  t.ok(readBlocklist(folded, list).has('qwerty'), 'a copy cut inside its last entry is refused')
})

t.test('a last entry without its newline still ends the search (no endless loop)', async (t) => {
  const keys = new SortedKeys('alpha\nbeta\ngamma')
  t.ok(keys.has('gamma'), 'found')
  t.notOk(keys.has('zeta'), 'and a key past it is absent')
})
