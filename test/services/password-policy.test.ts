import t from 'tap'
import { blocklistKey, isBlocklisted } from '../../lib/password-blocklist.js'
import { passwordProblems } from '../../services/password-policy.js'

/**
 * Regressions from a hostile review: padding a blocklisted password or a context word with spaces,
 * tabs, a zero-width space or a soft hyphen used to pass every check.
 */

const owner = { username: 'alicewonder', email: 'alice.w@example.com' }
const COMMON = 'momsanaladventure' // on the bundled list

t.test('invisible characters and white space do not make a common password uncommon', async (t) => {
  t.ok(isBlocklisted(COMMON), 'the plain entry is on the list')
  for (const padded of [
    ` ${COMMON}`,
    `${COMMON} `,
    `${COMMON}\t`,
    `${COMMON}\u200b`,
    `moms\u00adanaladventure`,
  ]) {
    t.ok(isBlocklisted(padded), `${JSON.stringify(padded)} is still on the list`)
    t.match(passwordProblems(padded, 15, owner), ['is too common'])
  }
  t.equal(blocklistKey('  Pass\u200bWord\u00a0\u00a0X '), 'password x', 'the comparison key')
})

t.test('invisible characters inside a context word do not hide it', async (t) => {
  t.match(passwordProblems('ali\u200bcewonder-river-stone', 15, owner), ['contains your username'])
  t.match(passwordProblems('bul\u200bwark-river-stone-lake', 15, owner), [
    'contains the name of this service',
  ])
})

t.test('only spaces, control or one repeated character is refused', async (t) => {
  for (const weak of [
    ' '.repeat(20),
    '\u0000'.repeat(20),
    '\u200b'.repeat(20),
    'z'.repeat(20),
    'ZzZzZzZzZzZzZzZzZz',
  ]) {
    t.match(
      passwordProblems(weak, 15, owner),
      ['is one character repeated or only spaces'],
      JSON.stringify(weak),
    )
  }
  t.same(passwordProblems('Brisk-Harbor-Meadow-58', 15, owner), [], 'a good passphrase passes')
})
