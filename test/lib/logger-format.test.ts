import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import t from 'tap'
import { loadPrettyFactory, logFormat, loggerOptions, prettyStream } from '../../lib/logger.js'
import { WITHOUT_COVERAGE } from '../helper.js'

/** The output format: readable lines for a developer at a terminal, JSON everywhere else. */

const logger = new URL('../../lib/logger.ts', import.meta.url).pathname
const dir = mkdtempSync(join(tmpdir(), 'bulwark-log-format-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

t.test('LOG_FORMAT=auto is pretty only outside production, on a terminal', async (t) => {
  const level = { LOG_LEVEL: 'info' } as const
  t.equal(logFormat({ ...level, NODE_ENV: 'development', LOG_FORMAT: 'auto' }, true), 'pretty')
  t.equal(logFormat({ ...level, NODE_ENV: 'test' }, true), 'pretty')
  t.equal(logFormat({ ...level, NODE_ENV: 'development' }, false), 'json', 'a pipe or a log driver: JSON')
  t.equal(logFormat({ ...level, NODE_ENV: 'production' }, true), 'json', 'production: JSON')
  t.equal(logFormat(level, true), 'json', 'no NODE_ENV known: JSON')
  t.equal(logFormat({ ...level, NODE_ENV: 'production', LOG_FORMAT: 'pretty' }, false), 'pretty', 'as told')
  t.equal(logFormat({ ...level, NODE_ENV: 'development', LOG_FORMAT: 'json' }, true), 'json', 'as told')
})

t.test('pretty lines keep the redaction and the event fields', async (t) => {
  const factory = loadPrettyFactory()
  if (!factory) throw new Error('pino-pretty is a devDependency: it is installed here')
  const lines: string[] = []
  const destination = { write: (line: string) => lines.push(line) }
  const log = pino(loggerOptions({ LOG_LEVEL: 'info' }), prettyStream(destination, factory, false))
  log.info({ event: 'auth.login', password: 'hunter2-hunter2', user: { apiToken: 'tok' } }, 'signed in')
  t.equal(lines.length, 1)
  t.match(
    lines[0],
    /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: signed in \{"event":"auth.login","password":"\[Redacted\]","user":\{"apiToken":"\[Redacted\]"\}\}\n$/,
  )
  t.notMatch(lines[0], /hunter2|tok"/, 'no secret')
  t.notOk(lines[0]?.includes('\u001b['), 'no colour when not asked for')
})

/** Runs createLogger in a child whose stdout is a pipe; `block` makes pino-pretty unloadable, as in the image. */
function child(env: Record<string, string>, block = false) {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.mts`)
  writeFileSync(
    file,
    `import { createLogger } from '${logger}'
const log = createLogger({ LOG_LEVEL: 'info', NODE_ENV: 'development', LOG_FORMAT: process.env.FORMAT })
for (let n = 0; n < 500; n++) log.info({ event: 'probe', n }, 'line')
process.exit(0)
`,
  )
  const blocker = join(dir, 'block.cjs')
  writeFileSync(
    blocker,
    `const Module = require('node:module')
const resolve = Module._resolveFilename
Module._resolveFilename = function (request, ...rest) {
  if (request === 'pino-pretty') throw Object.assign(new Error('not installed'), { code: 'MODULE_NOT_FOUND' })
  return resolve.call(this, request, ...rest)
}
`,
  )
  // The sources import each other as `.js` (NodeNext): map those to the `.ts` beside them.
  const sources = join(dir, 'sources.mjs')
  writeFileSync(
    sources,
    `import { existsSync } from 'node:fs'
import { registerHooks } from 'node:module'
import { fileURLToPath } from 'node:url'
registerHooks({
  resolve(specifier, context, next) {
    if (specifier.startsWith('.') && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) {
      const source = new URL(specifier.slice(0, -3) + '.ts', context.parentURL)
      if (existsSync(fileURLToPath(source))) return next(source.href, context)
    }
    return next(specifier, context)
  },
})
`,
  )
  // Node's own type stripping, not tsx: tsx resolves modules itself, past the blocker's hook.
  const preload = ['--import', sources, ...(block ? ['--require', blocker] : [])]
  const args = [...preload, '--experimental-strip-types', '--no-warnings', file]
  const c = spawn(process.execPath, args, {
    env: { ...process.env, ...env, ...WITHOUT_COVERAGE },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  c.stdout.on('data', (d) => {
    out += d
  })
  return new Promise<{ code: number | null; lines: string[] }>((resolve) =>
    c.on('close', (code) => resolve({ code, lines: out.split('\n').filter(Boolean) })),
  )
}

t.test('LOG_FORMAT=pretty on a pipe: pretty lines, every one written before process.exit', async (t) => {
  const run = await child({ FORMAT: 'pretty' })
  t.equal(run.code, 0)
  t.equal(run.lines.length, 500, 'the asynchronous destination still flushes at exit')
  t.match(run.lines[0], /^\[[\d:.]+\] INFO: line \{"event":"probe","n":0\}$/)
})

t.test(
  'without pino-pretty (production installs): JSON, and one warning when pretty was asked for',
  async (t) => {
    const asked = await child({ FORMAT: 'pretty' }, true)
    t.equal(asked.code, 0)
    t.equal(asked.lines.length, 501)
    const first = JSON.parse(asked.lines[0] ?? '{}')
    t.match(first, { level: 'warn', event: 'log.pretty_unavailable' })
    t.match(JSON.parse(asked.lines[1] ?? '{}'), { level: 'info', event: 'probe', n: 0 })
    const auto = await child({ FORMAT: 'auto' }, true)
    t.equal(auto.lines.length, 500, 'auto on a pipe: JSON, no warning')
    t.match(JSON.parse(auto.lines[0] ?? '{}'), { event: 'probe', n: 0 })
  },
)
