// `npm run audit`: the runtime dependencies against the registry's advisory database
// (`npm audit --omit=dev`). Exit 0: no high or critical advisory. Exit 1: at least one (listed).
// Exit 2: the audit could not run (the audit endpoint refused or was unreachable) — said plainly,
// and never counted as passed: no advisory data was checked. `--prefer-online`: never a cached answer.
import { spawnSync } from 'node:child_process'

const LEVELS = ['info', 'low', 'moderate', 'high', 'critical']
const FAIL_AT = process.env.AUDIT_LEVEL ?? 'high'
if (!LEVELS.includes(FAIL_AT)) {
  console.error(`audit: AUDIT_LEVEL must be one of ${LEVELS.join(', ')}`)
  process.exit(2)
}

const run = spawnSync('npm', ['audit', '--omit=dev', '--json', '--prefer-online', ...process.argv.slice(2)], {
  encoding: 'utf8',
  maxBuffer: 64 * 1024 * 1024,
})

/** npm prints one JSON document; on an endpoint error it is the HTTP error instead of a report. */
let report
try {
  report = JSON.parse(run.stdout)
} catch {
  report = null
}

// Only npm 7+'s report (version 2) is understood; anything else is not a result we can judge.
if (report?.auditReportVersion !== 2 || !report?.metadata?.vulnerabilities) {
  const status = report?.statusCode ?? report?.error?.code ?? run.error?.code ?? `exit ${run.status}`
  const detail = report?.message ?? report?.error?.summary ?? run.stderr.trim().split('\n').at(-1) ?? ''
  console.error(
    report?.auditReportVersion !== undefined && report.auditReportVersion !== 2
      ? `audit: NOT RUN — npm gave an audit report of version ${report.auditReportVersion}, which this script does not read (npm 7 or later gives 2)`
      : `audit: NOT RUN — the registry's audit endpoint could not be used (${status}): ${detail}`,
  )
  console.error('audit: no advisory data was checked, so this step has NOT passed.')
  process.exit(2)
}

const counts = report.metadata.vulnerabilities
const failing = LEVELS.slice(LEVELS.indexOf(FAIL_AT))
const found = Object.values(report.vulnerabilities ?? {}).filter((v) => failing.includes(v.severity))
// The counts decide as well as the list, so a report whose list is cut short cannot pass.
const counted = failing.reduce((sum, level) => sum + Number(counts[level] ?? 0), 0)
console.log(
  `audit: ${report.metadata.dependencies?.prod ?? '?'} runtime dependencies checked; ` +
    LEVELS.map((level) => `${counts[level] ?? 0} ${level}`).join(', '),
)
for (const v of found) {
  const titles = (v.via ?? [])
    .filter((via) => typeof via === 'object')
    .map((via) => `${via.title} ${via.url}`)
  const through = (v.via ?? []).filter((via) => typeof via === 'string')
  console.log(
    `  ${v.severity}: ${v.name} ${v.range}` +
      (titles.length ? ` — ${titles.join('; ')}` : ` (through ${through.join(', ')})`) +
      (v.fixAvailable ? ' [fix available]' : ''),
  )
}
if (found.length > 0 || counted > 0) {
  console.log(
    `audit: FAILED — ${Math.max(found.length, counted)} runtime package(s) with a ${failing.join(' or ')} advisory`,
  )
  process.exit(1)
}
console.log(`audit: passed (nothing at ${FAIL_AT} or above)`)
