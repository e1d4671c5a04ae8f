import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import postgres from 'postgres'
import t from 'tap'
// @ts-expect-error: a plain .mjs script without type declarations
import { badLinks, extractBlocks } from '../scripts/doc-test.mjs'
import { WITHOUT_COVERAGE } from './helper.js'

/** `npm run docs:test`'s reading of README.md: which blocks run, where they are, which links count. */

type Block = { line: number; lang: string; code: string; skip: boolean }
const blocksOf = extractBlocks as (text: string) => Block[]
const linksOf = badLinks as (text: string, root?: string) => string[]

t.test(
  'sh and bash blocks with their README line; console and others are told apart; skip markers',
  async (t) => {
    const text = [
      '# Title', // 1
      '```sh', // 2
      'curl localhost:3000/health/live', // 3
      '```', // 4
      '<!-- doc-test: skip (starts the service) -->', // 5
      '', // 6
      '```sh', // 7
      'npm start', // 8
      '```', // 9
      '```console', // 10
      '$ curl localhost:3000', // 11
      '```', // 12
      '```bash', // 13
      'A=1', // 14
      'echo "$A"', // 15
      '```', // 16
    ].join('\n')
    t.same(blocksOf(text), [
      { line: 2, lang: 'sh', code: 'curl localhost:3000/health/live', skip: false },
      { line: 7, lang: 'sh', code: 'npm start', skip: true },
      { line: 10, lang: 'console', code: '$ curl localhost:3000', skip: false },
      { line: 13, lang: 'bash', code: 'A=1\necho "$A"', skip: false },
    ])
    t.throws(
      () => blocksOf('<!-- doc-test: skpi -->\n```sh\nls\n```'),
      /README\.md:1: unknown doc-test directive "skpi"/,
    )
  },
)

t.test('links: inside the repository and existing, or not relative at all', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'bulwark-doclinks-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  mkdirSync(join(root, 'docs'))
  writeFileSync(join(root, 'docs', 'deploy.md'), '# deploy\n')
  const text =
    '[guide](docs/deploy.md) [part](docs/deploy.md#probes) [web](https://example.com) [here](#quickstart) ' +
    '[gone](docs/missing.md) [up](../outside.md) [abs](/etc/passwd)'
  t.same(linksOf(text, root), ['docs/missing.md', '../outside.md', '/etc/passwd'])
})

t.test(
  "the repository's README: every link resolves, every runnable block keeps files out of the repository",
  async (t) => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    t.same(linksOf(readme), [])
    const runnable = blocksOf(readme).filter((b) => (b.lang === 'sh' || b.lang === 'bash') && !b.skip)
    t.ok(runnable.length >= 5, 'the walkthrough is executed, not skipped')
    t.notOk(
      runnable.some((b) => /(^|\s)-[bc] +[\w.]+\.txt\b/.test(b.code)),
      'curl cookie jars are temporary files, not files in the working directory',
    )
  },
)

t.test('stopped by SIGTERM: the service, the database and the temporary directory go too', async (t) => {
  // Regression: a CI timeout's SIGTERM ended the script at once; the service it started ran on
  // (reparented to PID 1), its bulwark_doctest_* database and its temporary directory stayed.
  const root = fileURLToPath(new URL('..', import.meta.url))
  const adminUrl = process.env.DATABASE_URL
  const child = spawn(process.execPath, [join(root, 'scripts/doc-test.mjs')], {
    cwd: root,
    env: { ...process.env, LOG_FORMAT: 'json', ...WITHOUT_COVERAGE },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let output = ''
  child.stdout.on('data', (chunk) => {
    output += chunk
  })
  child.stderr.on('data', (chunk) => {
    output += chunk
  })
  const closed = once(child, 'close')
  // The service is started once this line is out (after a build of dist/ when it is stale).
  while (!/blocks of README\.md against/.test(output) && child.exitCode === null) await sleep(100)
  const base = /against (127\.0\.0\.1:\d+)/.exec(output)?.[1]
  t.ok(base, output)
  // Signalled once the service answers, while the blocks run: the service must be gone afterwards.
  const up = async () => (await fetch(`http://${base}/health/live`).catch(() => null))?.status === 200
  while (!(await up()) && child.exitCode === null) await sleep(100)
  child.kill('SIGTERM')
  const [code] = await closed
  t.equal(code, 143, output)
  t.match(output, /docs:test: SIGTERM: stopped/)
  t.notOk(await up(), 'the service is gone')
  const work = / work in (\S+)\)$/m.exec(output)?.[1] ?? ''
  t.match(work, /bulwark-doctest-/)
  t.notOk(existsSync(work), 'the temporary directory is removed')
  if (adminUrl) {
    const sql = postgres(adminUrl, { max: 1, onnotice: () => {} })
    t.teardown(() => sql.end({ timeout: 5 }))
    const left =
      await sql`select datname from pg_database where datname like ${`bulwark_doctest_${child.pid}_%`}`
    t.same(left, [], 'its database is dropped')
  }
})
