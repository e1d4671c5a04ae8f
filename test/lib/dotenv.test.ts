import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { readDotEnv } from '../../lib/config.js'

/**
 * Regression: copying .env.example to .env, as its first line suggests, made `npm test` fail. The
 * service and the CLI read `.env` from their working directory, so a developer's file reached the
 * processes tests start there (test/server.test.ts refused to run beside one). Under NODE_ENV=test,
 * which `npm test` sets for every process, `.env` is now not read.
 */

const root = new URL('../..', import.meta.url).pathname
const dir = mkdtempSync(join(tmpdir(), 'bulwark-dotenv-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

t.test('readDotEnv: skipped under NODE_ENV=test, read otherwise, the environment wins', async (t) => {
  const file = join(dir, 'probe.env')
  copyFileSync(join(root, '.env.example'), file)
  writeFileSync(file, 'BULWARK_DOTENV_PROBE=from-file\nBULWARK_DOTENV_SET=from-file\n', { flag: 'a' })
  t.teardown(() => {
    delete process.env.BULWARK_DOTENV_PROBE
    delete process.env.BULWARK_DOTENV_SET
  })
  process.env.BULWARK_DOTENV_SET = 'from-environment'
  t.equal(readDotEnv(file, { NODE_ENV: 'test' }), false, 'not read under NODE_ENV=test')
  t.equal(process.env.BULWARK_DOTENV_PROBE, undefined, 'nothing reached the environment')
  t.equal(readDotEnv(join(dir, 'missing.env'), {}), false, 'a missing file is no error')
  t.equal(readDotEnv(file, { NODE_ENV: 'development' }), true, 'read in development')
  t.equal(process.env.BULWARK_DOTENV_PROBE, 'from-file')
  t.equal(process.env.BULWARK_DOTENV_SET, 'from-environment', 'a variable already set wins')
})

t.test(
  'the CLI beside a .env with a bad value: ignored under NODE_ENV=test, refused in development',
  async (t) => {
    const cwd = mkdtempSync(join(dir, 'cwd-'))
    copyFileSync(join(root, '.env.example'), join(cwd, '.env'))
    writeFileSync(join(cwd, '.env'), 'LOG_LEVEL=loud\n', { flag: 'a' })
    const run = (NODE_ENV: string) => {
      const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV }
      delete env.LOG_LEVEL
      return spawnSync(process.execPath, [...process.execArgv, join(root, 'cli.ts'), '--help'], {
        cwd,
        env,
        encoding: 'utf8',
      })
    }
    const test = run('test')
    t.equal(test.status, 0, test.stderr)
    t.match(test.stdout, /^usage: npm run cli -- <command>/)
    const dev = run('development')
    t.equal(dev.status, 1)
    t.match(dev.stderr, /^bulwark: invalid configuration: LOG_LEVEL is invalid/)
  },
)
