import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { runScript, WITHOUT_COVERAGE } from './helper.js'

/** openapi.json, written by `npm run openapi`, is current; `npm run openapi:check` says when it is not. */

const root = dirname(dirname(fileURLToPath(import.meta.url)))

/** Runs scripts/openapi.mjs as `npm run openapi` does, without tap's loaders and coverage. */
function openapiScript(...args: string[]) {
  const { NODE_OPTIONS: _, NODE_V8_COVERAGE: __, ...env } = process.env
  return runScript('openapi.mjs', args, { ...env, ...WITHOUT_COVERAGE })
}

t.test('the committed openapi.json is what the code produces; a stale copy fails the check', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-openapi-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const committed = readFileSync(join(root, 'openapi.json'), 'utf8')
  const stale = join(dir, 'openapi.json')
  writeFileSync(stale, committed.replace('"operationId": "listComments"', '"operationId": "getComments"'))
  const [current, old] = await Promise.all([
    openapiScript('--check'),
    openapiScript('--check', '--file', stale),
  ])
  t.equal(current.code, 0, `openapi.json is current (else run npm run openapi): ${current.out}`)
  t.equal(old.code, 1, 'a stale file fails')
  t.match(old.out, /openapi\.json is out of date.*first difference at line \d+.*Run `npm run openapi`/s)
  const doc = JSON.parse(committed)
  t.same(Object.keys(doc).slice(0, 3), ['openapi', 'info', 'servers'], 'the top level in the usual order')
  t.same(Object.keys(doc.paths), Object.keys(doc.paths).sort(), 'paths sorted')
  t.same(Object.keys(doc.components.schemas.Comment.properties), [
    'id',
    'body',
    'author',
    'createdAt',
    'updatedAt',
  ])
  t.equal(doc.components.securitySchemes.cookieAuth.name, '__Host-access_token', 'production cookie names')
  t.notMatch(committed, /127\.0\.0\.1|postgres:|openapi@/, 'nothing of the build configuration')
})
