import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
// @ts-expect-error: a plain .mjs script without type declarations
import { buildIfStale } from '../scripts/build-if-stale.mjs'

/** `npm start` on a fresh clone says "building…" before the slow build, and only when it builds. */

const build = buildIfStale as (options: { force?: boolean; announce?: (line: string) => void }) => boolean
const home = process.cwd()

function inDir(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-build-'))
  process.chdir(dir)
  t.teardown(() => {
    process.chdir(home)
    rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

t.test('an up-to-date dist/ builds nothing and says nothing', async (t) => {
  const dir = inDir(t)
  mkdirSync(join(dir, 'dist'))
  writeFileSync(join(dir, 'dist', '.build-stamp'), 'now\n')
  const lines: string[] = []
  t.equal(build({ announce: (line) => lines.push(line) }), false)
  t.same(lines, [])
})

t.test('a missing dist/ is announced before the compiler runs', async (t) => {
  inDir(t)
  const lines: string[] = []
  // No TypeScript here: the compiler step fails, after the line.
  t.throws(() => build({ announce: (line) => lines.push(line) }))
  t.same(lines, ['building…'])
})
