// `npm run lockfile:check`: the lock-file policy, offline. Every package comes from the npm registry
// over https with a sha512 integrity hash; no git, file, link or tarball-URL dependencies.
// lockfile-lint checks every recorded download address (scheme, host, package name, hash type);
// this script adds what it skips: an entry with no integrity hash, a linked folder, and specs in
// package.json that are not registry versions. (npm here is set to omit registry addresses from the
// lock file, `omit-lockfile-registry-resolved`, so such an entry installs from the configured
// registry, and the hash is what pins its content.)
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const lockPath = process.argv[2] ?? 'package-lock.json'
const manifestPath = process.argv[3] ?? 'package.json'
const require = createRequire(import.meta.url)
const cli = require.resolve('lockfile-lint/bin/lockfile-lint.js')
const args = [
  cli,
  ...['--path', lockPath, '--type', 'npm', '--validate-https', '--validate-integrity'],
  ...['--validate-package-names', '--allowed-hosts', 'npm', '--empty-hostname', 'false', '--format', 'plain'],
]
const lint = spawnSync(process.execPath, args, { encoding: 'utf8' })
const problems = []
if (lint.status !== 0) problems.push(`lockfile-lint: ${(lint.stdout + lint.stderr).trim()}`)

const lock = JSON.parse(readFileSync(lockPath, 'utf8'))
if (!(lock.lockfileVersion >= 2))
  problems.push(`lockfileVersion ${lock.lockfileVersion}: regenerate with npm 7 or later`)
if (Object.keys(lock.packages ?? {}).length < 2)
  problems.push('no packages recorded: not a lock file of this project')
for (const [path, entry] of Object.entries(lock.packages ?? {})) {
  // The root, and bundled packages: they come inside their parent's tarball, which its hash covers.
  if (path === '' || entry.inBundle) continue
  if (entry.link) problems.push(`${path}: a linked folder (${entry.resolved}), not a registry package`)
  else if (!entry.integrity) problems.push(`${path}: no integrity hash`)
  else if (!entry.integrity.split(/\s+/).every((hash) => hash.startsWith('sha512-')))
    problems.push(`${path}: integrity is not sha512 (${entry.integrity.slice(0, 20)}…)`)
}

// A registry version or range, or an npm: alias of one; never git, file, link, a URL or a GitHub shorthand.
const REGISTRY_SPEC = /^(npm:(@[\w.-]+\/)?[\w.-]+@)?[\w\s.*^~<>=|-]+$/
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'))
for (const field of ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies']) {
  for (const [name, spec] of Object.entries(manifest[field] ?? {})) {
    if (!REGISTRY_SPEC.test(spec))
      problems.push(`package.json ${field}.${name}: "${spec}" is not a registry version`)
  }
}

const count = Object.keys(lock.packages ?? {}).length - 1
if (problems.length > 0) {
  for (const problem of problems) console.error(problem)
  console.error(`lockfile: FAILED — ${problems.length} problem(s) in ${count} packages`)
  process.exit(1)
}
console.log(
  `lockfile: ${count} packages, all from the npm registry with sha512 integrity; no git, file or URL specs`,
)
