// Summaries (medians over rounds), the markdown tables, and bench/results/latest.{json,md}.
import { mkdirSync, writeFileSync } from 'node:fs'
import { LIMITS, RATIOS } from './scenarios.mjs'

const MiB = 1024 * 1024
/** Above this share of one core the load generator may be what limits req/s. */
export const GENERATOR_CPU_WARN = 0.85

export function median(values) {
  const xs = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b)
  if (xs.length === 0) return null
  const mid = Math.floor(xs.length / 2)
  return xs.length % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2
}

/** Per scenario: medians over rounds; errors and non-2xx summed; generator CPU at its highest. */
export function summarize(scenarios, rounds) {
  return scenarios.map((s) => {
    const rs = rounds.map((round) => round[s.id]).filter(Boolean)
    const pick = (key) => median(rs.map((r) => r[key]))
    return {
      id: s.id,
      label: s.label,
      rounds: rs.length,
      rps: pick('rps'),
      p50: pick('p50'),
      p99: pick('p99'),
      cpuPerReq: pick('cpuPerReq'),
      dbPerReq: pick('dbPerReq'),
      peakRss: Math.max(0, ...rs.map((r) => r.peakRss ?? 0)) || null,
      generatorCpu: Math.max(0, ...rs.map((r) => r.generatorCpu ?? 0)) || null,
      non2xx: rs.reduce((n, r) => n + (r.non2xx ?? 0), 0),
      errors: rs.reduce((n, r) => n + (r.errors ?? 0), 0),
      probeP50: median(rs.map((r) => r.probe?.p50)),
      probeP99: median(rs.map((r) => r.probe?.p99)),
    }
  })
}

const met = (value, t) => {
  if (value === null || (t.min === undefined && t.max === undefined)) return '—'
  return (t.min === undefined || value >= t.min) && (t.max === undefined || value <= t.max) ? 'yes' : '**no**'
}
const targetText = (t, unit = '') =>
  t.min !== undefined ? `≥ ${t.min}${unit}` : t.max !== undefined ? `≤ ${t.max}${unit}` : '(info)'

export function ratios(rounds) {
  const out = []
  for (const r of RATIOS) {
    const perRound = rounds.map((round) => {
      const a = round[r.a]?.[r.of]
      const b = round[r.b]?.[r.of]
      return typeof a === 'number' && typeof b === 'number' && b > 0 ? a / b : null
    })
    if (perRound.every((v) => v === null)) continue
    const value = median(perRound)
    out.push({
      id: r.id,
      label: r.label,
      perRound,
      median: value,
      min: r.min,
      max: r.max,
      met: met(value, r),
    })
  }
  for (const l of LIMITS) {
    const perRound = rounds.map((round) => l.value(round))
    if (perRound.every((v) => v === null)) continue
    const value = median(perRound)
    const compare = l.compare ? median(rounds.map((round) => l.compare(round))) : null
    out.push({
      id: l.id,
      label: l.label,
      perRound,
      median: value,
      max: l.max,
      unit: l.unit,
      compare: compare === null ? null : { label: l.compareLabel, value: compare },
      met: met(value, l),
    })
  }
  return out
}

const fmt = (v, digits = 0) => (v === null || v === undefined ? '—' : v.toFixed(digits))

export function markdown({
  options,
  machine,
  summary,
  ratioRows,
  started,
  seconds,
  warnings,
  database,
  bootRss = {},
}) {
  const lines = []
  lines.push(
    `Machine: ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}, load average at start ${machine.loadAverage?.join(' ') ?? '?'}; ` +
      `${started}; ${options.rounds} rounds × ${options.duration} s (+${options.warmup} s warm-up), ` +
      `${options.connections} connections (login and bcrypt ${8}); database: ${database}; run took ${Math.round(seconds)} s.` +
      serviceEnvNote(options),
  )
  lines.push('')
  lines.push(
    '| scenario | req/s | p50 ms | p99 ms | server CPU µs/req | PostgreSQL CPU µs/req | peak RSS MiB | generator CPU | non-2xx | errors |',
  )
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const s of summary) {
    const probe =
      s.probeP99 !== null
        ? ` (\`/health/live\` beside it: p50 ${fmt(s.probeP50, 1)}, p99 ${fmt(s.probeP99, 1)} ms)`
        : ''
    lines.push(
      `| \`${s.id}\` ${s.label}${probe} | ${fmt(s.rps)} | ${fmt(s.p50, 1)} | ${fmt(s.p99, 1)} | ${fmt(s.cpuPerReq)} | ${fmt(s.dbPerReq)} | ${fmt(s.peakRss && s.peakRss / MiB, 1)} | ${s.generatorCpu === null ? '—' : `${Math.round(s.generatorCpu * 100)} %`} | ${s.non2xx} | ${s.errors} |`,
    )
  }
  lines.push('')
  lines.push('| ratio / limit | per round | median | target | met |')
  lines.push('|---|---|---:|---|---|')
  for (const r of ratioRows) {
    const unit = r.unit ? ` ${r.unit}` : '×'
    const digits = r.unit ? 1 : 2
    const compare = r.compare ? ` (${r.compare.label}: ${fmt(r.compare.value, 1)}${unit})` : ''
    lines.push(
      `| ${r.label} | ${r.perRound.map((v) => fmt(v, digits)).join(', ')} | ${fmt(r.median, digits)}${compare} | ${targetText(r, r.unit ? ` ${r.unit}` : '×')} | ${r.met} |`,
    )
  }
  lines.push('')
  lines.push(
    'Medians over rounds; ratios are computed within each round, then their median. Server CPU is utime+stime of the ' +
      'server process from /proc; PostgreSQL CPU is summed over every `postgres` process on the machine (machine-wide: ' +
      "another user's queries count too). Generator CPU is the autocannon process's share of one core, at its highest round.",
  )
  const boot = Object.entries(bootRss)
    .map(([kind, values]) => `${kind} ${fmt(median(values) && median(values) / MiB, 1)}`)
    .join(', ')
  if (boot) lines.push('', `Peak RSS once ready, before any load (MiB, median): ${boot}.`)
  for (const w of warnings) lines.push(`\n> ${w}`)
  return `${lines.join('\n')}\n`
}

/** The extra service variables of --service-env, named in the report so a table is not misread. */
export function serviceEnvNote(options) {
  const pairs = Object.entries(options.serviceEnv ?? {}).map(([k, v]) => `${k}=${v}`)
  return pairs.length > 0 ? `; service env: ${pairs.join(' ')}` : ''
}

export function writeResults(dir, json, md) {
  mkdirSync(dir, { recursive: true })
  writeFileSync(`${dir}/latest.json`, `${JSON.stringify(json, null, 2)}\n`)
  writeFileSync(`${dir}/latest.md`, md)
}
