import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { WITHOUT_COVERAGE } from '../helper.js'

/** The asynchronous stdout destination: every line out on each exit path, and a bounded buffer when stdout stalls. */

const dir = mkdtempSync(join(tmpdir(), 'rev13-log-'))
const logger = new URL('../../lib/logger.ts', import.meta.url).pathname

function child(body: string, nodeArgs: string[] = []) {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.mts`)
  writeFileSync(
    file,
    `import { createLogger } from '${logger}'\nconst log = createLogger({ LOG_LEVEL: 'info' })\n${body}\n`,
  )
  return spawn(process.execPath, [...nodeArgs, '--import', 'tsx', file], {
    env: { ...process.env, ...WITHOUT_COVERAGE },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

function collect(c: ReturnType<typeof child>, pauseMs = 0) {
  return new Promise<{ lines: number; code: number | null; signal: string | null; stderr: string }>(
    (resolve) => {
      let out = ''
      let stderr = ''
      c.stderr.on('data', (d) => {
        stderr += d
      })
      if (pauseMs) {
        c.stdout.pause()
        setTimeout(
          () =>
            c.stdout
              .on('data', (d) => {
                out += d
              })
              .resume(),
          pauseMs,
        )
      } else
        c.stdout.on('data', (d) => {
          out += d
        })
      c.on('close', (code, signal) =>
        resolve({ lines: out.split('\n').filter((l) => l.includes('"n":')).length, code, signal, stderr }),
      )
    },
  )
}

for (const [name, end] of [
  ['process.exit', 'process.exit(1)'],
  ['uncaught exception', 'throw new Error("fatal")'],
  ['fatal line then exit', 'log.fatal({ n: -1 }, "dying"); process.exit(1)'],
]) {
  t.test(`every line reaches stdout before ${name}`, async (t) => {
    const r = await collect(
      child(`for (let n = 0; n < 20000; n++) log.info({ n, pad: 'x'.repeat(200) }, 'line')\n${end}`),
    )
    t.equal(r.lines, name === 'fatal line then exit' ? 20001 : 20000, `${name}: lines (code ${r.code})`)
  })
}

t.test('a stdout that is not drained does not crash the process (bounded buffer)', async (t) => {
  // 120 MB of log lines while the reader is stalled for 8 s; a 64 MB heap stands in for the image's 256 MB.
  const c = child(
    `for (let i = 0; i < 60; i++) { for (let n = 0; n < 1000; n++) log.info({ n, pad: 'x'.repeat(2000) }, 'audit'); await new Promise((r) => setImmediate(r)) }
process.stderr.write('heapUsed=' + process.memoryUsage().heapUsed + '\\n')`,
    ['--max-old-space-size=64'],
  )
  const r = await collect(c, 8000)
  t.equal(
    r.signal,
    null,
    `no crash (signal ${r.signal}, code ${r.code}, ${r.stderr.split('\n').find((l) => /heap|memory/i.test(l)) ?? ''})`,
  )
  t.equal(r.code, 0)
})
