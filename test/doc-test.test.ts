import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
// @ts-expect-error: a plain .mjs script without type declarations
import { badLinks, extractBlocks } from '../scripts/doc-test.mjs'

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
