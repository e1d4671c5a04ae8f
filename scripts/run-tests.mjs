// `npm test`: tap against DATABASE_URL when set, else against an embedded PostgreSQL (its own data
// directory, .data/postgres-test, so a running `npm start` is not disturbed). Each test file creates
// its own database on that server. Ends with one line "N passed, N failed, N skipped" and tap's exit code.
import { spawn } from 'node:child_process'
import { buildIfStale } from './build-if-stale.mjs'

const args = process.argv.slice(2)
let embedded = null
const env = { ...process.env, NODE_ENV: 'test' }
if (!env.DATABASE_URL) {
  buildIfStale()
  const { startEmbeddedPostgres } = await import('../dist/lib/embedded-postgres.js')
  const { createLogger } = await import('../dist/lib/logger.js')
  embedded = await startEmbeddedPostgres({
    dataDir: process.env.TEST_EMBEDDED_DB_DIR ?? '.data/postgres-test',
    logger: createLogger({ LOG_LEVEL: 'warn' }),
    fast: true,
    announce: (line) => process.stderr.write(`${line}\n`),
  })
  env.DATABASE_URL = embedded.url
}

const counts = { pass: 0, fail: 0, skip: 0 }
const code = await new Promise((resolve) => {
  const child = spawn(process.execPath, ['node_modules/tap/dist/esm/run.mjs', ...args], {
    env,
    stdio: ['inherit', 'pipe', 'inherit'],
  })
  let tail = ''
  child.stdout.on('data', (chunk) => {
    process.stdout.write(chunk)
    tail = (tail + chunk.toString()).slice(-4096)
  })
  child.on('close', (status) => {
    // Without a terminal tap ends with a comment "# { total: N, pass: N, fail: N, ... }".
    const summary = [...tail.matchAll(/^#\s*\{([^}]*)\}\s*$/gm)].at(-1)?.[1] ?? ''
    counts.pass = Number(/pass:\s*(\d+)/.exec(summary)?.[1] ?? 0)
    counts.fail = Number(/fail:\s*(\d+)/.exec(summary)?.[1] ?? 0)
    counts.skip = Number(/skip:\s*(\d+)/.exec(summary)?.[1] ?? 0)
    resolve(status ?? 1)
  })
})
await embedded?.stop()
process.stdout.write(`${counts.pass} passed, ${counts.fail} failed, ${counts.skip} skipped\n`)
process.exit(code)
