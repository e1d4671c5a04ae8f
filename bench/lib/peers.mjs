// Peers with their own dependencies (bench/peers/<name>/package.json and its lock file): installed
// with `npm ci` on first use, never part of the root package's tree.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const PEERS_DIR = fileURLToPath(new URL('../peers/', import.meta.url))

export function ensurePeerDeps(name) {
  const dir = join(PEERS_DIR, name)
  if (existsSync(join(dir, 'node_modules'))) return
  console.log(`installing bench/peers/${name} (npm ci)`)
  const bundled = join(dirname(process.execPath), 'npm')
  execFileSync(existsSync(bundled) ? bundled : 'npm', ['ci', '--no-audit', '--no-fund'], {
    cwd: dir,
    stdio: 'inherit',
  })
}
