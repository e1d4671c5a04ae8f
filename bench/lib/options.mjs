// Command-line flags (and their BENCH_* environment equivalents) of npm run bench.
import { parseArgs } from 'node:util'
import { SCENARIOS, withBaselines } from './scenarios.mjs'

const HELP = `npm run bench [-- options]

Load-tests the built service (NODE_ENV=production, every defence on, limits raised) with autocannon
against baselines and peers measured in the same run. Fresh processes every round, rounds interleaved,
medians of per-round ratios. Writes bench/results/latest.json and latest.md.

Options (environment variable in brackets; a flag wins):
  --duration <s>       measured seconds per scenario and round [BENCH_DURATION] (default 5)
  --warmup <s>         unmeasured seconds before each measurement [BENCH_WARMUP] (default 1)
  --rounds <n>         rounds [BENCH_ROUNDS] (default 3)
  --connections <n>    autocannon connections (login and bcrypt use 8) [BENCH_CONNECTIONS] (default 100)
  --scenarios <ids>    comma-separated subset; the baselines they need are added [BENCH_SCENARIOS]
  --log-level <level>  the service's LOG_LEVEL [BENCH_LOG_LEVEL] (default info)
  --service-env <K=V>  an extra variable for the service under test, repeatable, e.g.
                       --service-env METRICS_PORT=0 [BENCH_SERVICE_ENV: K=V pairs separated by
                       spaces; a flag wins for the same K]
  --help               this text

DATABASE_URL unset: an embedded PostgreSQL in .data/postgres-bench. Set: that server (a superuser
URL; the runtime and owner roles are made on it, and database bench_betterauth for better-auth).

Scenarios:
${SCENARIOS.map((s) => `  ${s.id.padEnd(20)} ${s.label}`).join('\n')}
`

/** KEY=VALUE pairs as an object (a later KEY wins); a malformed pair is an error naming it. */
function serviceEnvOf(pairs) {
  const out = {}
  for (const pair of pairs.filter(Boolean)) {
    const at = pair.indexOf('=')
    const key = pair.slice(0, at)
    if (at < 1 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new Error(`--service-env must be KEY=VALUE, got ${JSON.stringify(pair)}`)
    }
    out[key] = pair.slice(at + 1)
  }
  return out
}

export function parseOptions(argv = process.argv.slice(2), env = process.env) {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: env.BENCH_DURATION ?? '5' },
      warmup: { type: 'string', default: env.BENCH_WARMUP ?? '1' },
      rounds: { type: 'string', default: env.BENCH_ROUNDS ?? '3' },
      connections: { type: 'string', default: env.BENCH_CONNECTIONS ?? '100' },
      scenarios: { type: 'string', default: env.BENCH_SCENARIOS ?? '' },
      'log-level': { type: 'string', default: env.BENCH_LOG_LEVEL ?? 'info' },
      'service-env': { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) return { help: HELP }
  const number = (name, min) => {
    const n = Number(values[name])
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}`)
    return n
  }
  const asked = values.scenarios
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  const unknown = asked.filter((id) => !SCENARIOS.some((s) => s.id === id))
  if (unknown.length > 0) throw new Error(`unknown scenario(s): ${unknown.join(', ')} (see --help)`)
  return {
    serviceEnv: serviceEnvOf([...(env.BENCH_SERVICE_ENV ?? '').split(/\s+/), ...values['service-env']]),
    duration: number('duration', 1),
    warmup: number('warmup', 0),
    rounds: Math.floor(number('rounds', 1)),
    connections: Math.floor(number('connections', 1)),
    logLevel: values['log-level'],
    asked,
    scenarios: withBaselines(asked),
  }
}
