import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { runScript } from './helper.js'

/**
 * Supply-chain checks CI runs: the lock-file policy (offline) and the audit of runtime
 * dependencies. The audit talks to a stand-in advisory endpoint on 127.0.0.1, since the real one
 * answers 405 on these machines: a refusal must never read as a pass.
 */

const root = dirname(dirname(fileURLToPath(import.meta.url)))

type Lock = { packages: Record<string, Record<string, unknown>> }
type Manifest = { dependencies: Record<string, string> }

t.test('lock-file policy', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-lock-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'))
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

  const ok = await runScript('check-lockfile.mjs', [])
  t.equal(ok.code, 0, ok.out)
  t.match(ok.out, /all from the npm registry with sha512 integrity/)

  /** Writes a changed copy of the lock file (and manifest) and expects the check to name the problem. */
  const refuses = async (
    t: Test,
    name: string,
    change: (lock: Lock, manifest: Manifest) => void,
    expected: RegExp,
  ) => {
    const l = structuredClone(lock)
    const m = structuredClone(manifest)
    change(l, m)
    const lockPath = join(dir, `${name}.lock.json`)
    const manifestPath = join(dir, `${name}.package.json`)
    writeFileSync(lockPath, JSON.stringify(l))
    writeFileSync(manifestPath, JSON.stringify(m))
    const run = await runScript('check-lockfile.mjs', [lockPath, manifestPath])
    t.equal(run.code, 1, `${name}: exit 1`)
    t.match(run.out, expected, `${name}: names the problem`)
    t.match(run.out, /lockfile: FAILED/)
  }
  /** The entry every case changes: a runtime dependency with no dependencies of its own. */
  const xss = (l: Lock) => l.packages['node_modules/xss'] as Record<string, unknown>
  await refuses(
    t,
    'git',
    (l) => {
      xss(l).resolved = 'git+ssh://git@github.com/leizongmin/js-xss.git#0123abc'
    },
    /invalid protocol for package: xss/,
  )
  await refuses(
    t,
    'http',
    (l) => {
      xss(l).resolved = 'http://registry.npmjs.org/xss/-/xss-1.0.17.tgz'
    },
    /invalid protocol for package: xss/,
  )
  await refuses(
    t,
    'other-host',
    (l) => {
      xss(l).resolved = 'https://evil.example/xss/-/xss-1.0.17.tgz'
    },
    /invalid host\(s\) for package: xss/,
  )
  await refuses(
    t,
    'no-integrity',
    (l) => {
      delete xss(l).integrity
    },
    /node_modules\/xss: no integrity hash/,
  )
  await refuses(
    t,
    'sha1',
    (l) => {
      xss(l).integrity = 'sha1-2jmqRBEbpbJ1IZEEA7a4SVOpOHw='
    },
    /integrity|sha512/,
  )
  await refuses(
    t,
    'link',
    (l) => {
      l.packages['node_modules/local-thing'] = { resolved: 'file:../local-thing', link: true }
    },
    /local-thing/,
  )
  await refuses(
    t,
    'empty',
    (l) => {
      for (const key of Object.keys(l)) delete (l as Record<string, unknown>)[key]
    },
    /lockfileVersion undefined: regenerate[\s\S]*no packages recorded/,
  )
  await refuses(
    t,
    'github-spec',
    (_l, m) => {
      m.dependencies.xss = 'leizongmin/js-xss#master'
    },
    /dependencies\.xss: "leizongmin\/js-xss#master" is not a registry version/,
  )
})

/** A stand-in for the registry's bulk advisory endpoint, answering as `answer` says. */
async function advisoryEndpoint(t: Test, answer: 'refuse' | 'clean' | 'high' | 'moderate') {
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      if (!req.url?.includes('/-/npm/v1/security/advisories/bulk')) {
        res.writeHead(404).end()
        return
      }
      if (answer === 'refuse') {
        res.writeHead(405, { allow: 'GET,HEAD' }).end()
        return
      }
      const advisory = (severity: string) => ({
        xss: [
          {
            id: 1,
            url: 'https://advisories.example/1',
            title: 'Filter bypass',
            severity,
            vulnerable_versions: '<=1.0.17',
            cwe: ['CWE-79'],
            cvss: { score: 7.5, vectorString: null },
          },
        ],
      })
      const body = answer === 'clean' ? {} : advisory(answer)
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body))
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
}

t.test('a bundled package needs no hash of its own (its parent tarball has one)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-lock-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as Lock
  lock.packages['node_modules/xss/node_modules/bundled-thing'] = { version: '1.0.0', inBundle: true }
  const path = join(dir, 'bundled.json')
  writeFileSync(path, JSON.stringify(lock))
  const run = await runScript('check-lockfile.mjs', [path])
  t.equal(run.code, 0, run.out)
})

t.test('npm run audit', async (t) => {
  // A cache of each run's own: npm keeps computed advisories by id, so answers would mix.
  const audit = async (t: Test, answer: Parameters<typeof advisoryEndpoint>[1]) => {
    const cache = mkdtempSync(join(tmpdir(), 'bulwark-audit-cache-'))
    t.teardown(() => rmSync(cache, { recursive: true, force: true }))
    return runScript('audit.mjs', ['--registry', await advisoryEndpoint(t, answer), '--cache', cache])
  }
  t.test('an endpoint that refuses (405, as here): NOT RUN, exit 2, never a pass', async (t) => {
    const run = await audit(t, 'refuse')
    t.equal(run.code, 2, run.out)
    t.match(run.out, /audit: NOT RUN .*\(405\)/)
    t.match(run.out, /has NOT passed/)
    t.notMatch(run.out, /audit: passed/)
  })
  t.test('a high advisory in a runtime dependency fails and is named', async (t) => {
    const run = await audit(t, 'high')
    t.equal(run.code, 1, run.out)
    t.match(run.out, /high: xss .*Filter bypass https:\/\/advisories\.example\/1/)
    t.match(run.out, /audit: FAILED — 1 runtime package/)
  })
  t.test('a moderate advisory is reported but does not fail', async (t) => {
    const run = await audit(t, 'moderate')
    t.equal(run.code, 0, run.out)
    t.match(run.out, /1 moderate, 0 high, 0 critical/)
    t.match(run.out, /audit: passed/)
  })
  t.test('no advisories: passed', async (t) => {
    const run = await audit(t, 'clean')
    t.equal(run.code, 0, run.out)
    t.match(run.out, /0 high, 0 critical/)
  })

  /** Runs the script with an `npm` on PATH that prints `report`: shapes the real endpoint cannot give here. */
  const auditPrinting = async (t: Test, report: unknown) => {
    const bin = mkdtempSync(join(tmpdir(), 'bulwark-fake-npm-'))
    t.teardown(() => rmSync(bin, { recursive: true, force: true }))
    writeFileSync(join(bin, 'report.json'), JSON.stringify(report))
    writeFileSync(join(bin, 'npm'), `#!/bin/sh\ncat '${join(bin, 'report.json')}'\nexit 1\n`, { mode: 0o755 })
    return runScript('audit.mjs', [], { ...process.env, PATH: `${bin}:${process.env.PATH}` })
  }
  t.test('a report of another format (npm 6, version 1) is NOT RUN, never passed', async (t) => {
    const run = await auditPrinting(t, {
      auditReportVersion: 1,
      advisories: {},
      metadata: { vulnerabilities: { info: 0, low: 0, moderate: 0, high: 1, critical: 1 } },
    })
    t.equal(run.code, 2, run.out)
    t.match(run.out, /NOT RUN — npm gave an audit report of version 1/)
  })
  t.test('counts at the level fail even when the list of packages is empty', async (t) => {
    const run = await auditPrinting(t, {
      auditReportVersion: 2,
      vulnerabilities: {},
      metadata: {
        vulnerabilities: { info: 0, low: 0, moderate: 0, high: 0, critical: 2 },
        dependencies: { prod: 3 },
      },
    })
    t.equal(run.code, 1, run.out)
    t.match(run.out, /audit: FAILED — 2 runtime package/)
  })
})

t.test('Dockerfile lint: ours passes; a warning fails the step', async (t) => {
  const ok = await runScript('lint-dockerfile.mjs', [join(root, 'Dockerfile')])
  t.equal(ok.code, 0, ok.out)
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-dockerfile-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const bad = join(dir, 'Dockerfile')
  writeFileSync(bad, 'FROM node:24\nCMD ["node", "a.js"]\nCMD ["node", "b.js"]\n')
  const run = await runScript('lint-dockerfile.mjs', [bad])
  t.equal(run.code, 1, run.out)
  t.match(run.out, /:2: warning: There can only be one CMD/)
})
