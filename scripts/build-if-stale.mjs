// Builds dist/ when it is missing or older than any source file, with a clean tree so a deleted
// source (say, a route) never lingers in dist/ and gets autoloaded.
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const SOURCES = [
  'app.ts',
  'server-options.ts',
  'server.ts',
  'cli.ts',
  'plugins',
  'routes',
  'schemas',
  'services',
  'lib',
  'repositories',
]
const STAMP = 'dist/.build-stamp'

function newest(path) {
  if (!existsSync(path)) return 0
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newest(join(path, name))))
}

/** `announce` is told one line before the build (about 6 s), so a first `npm start` is not silent. */
export function buildIfStale({ force = false, announce = (line) => process.stderr.write(`${line}\n`) } = {}) {
  const built = existsSync(STAMP) ? statSync(STAMP).mtimeMs : 0
  const sources = Math.max(...SOURCES.map(newest), newest('tsconfig.json'), newest('tsconfig.build.json'))
  if (!force && built > sources) return false
  announce('building…')
  rmSync('dist', { recursive: true, force: true })
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
    stdio: 'inherit',
  })
  // The password blocklist, folded and sorted once here instead of at every boot (lib/password-blocklist.ts).
  execFileSync(process.execPath, ['dist/lib/password-blocklist.js', '--write'], { stdio: 'inherit' })
  writeFileSync(STAMP, `${new Date().toISOString()}\n`)
  return true
}

if (import.meta.url === `file://${process.argv[1]}`) buildIfStale({ force: process.argv.includes('--force') })
