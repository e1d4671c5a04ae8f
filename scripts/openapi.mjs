// `npm run openapi`: writes openapi.json, the OpenAPI document the code produces, for client
// generators and reviews. `npm run openapi:check` (--check): exits 1 when the committed file differs.
// --file <path> reads or writes another file (tests). Runs the TypeScript sources through tsx.
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { register } from 'tsx/esm/api'

const { values: options } = parseArgs({
  options: { check: { type: 'boolean', default: false }, file: { type: 'string' } },
})
const file = options.file ?? fileURLToPath(new URL('../openapi.json', import.meta.url))

const secret = () => randomBytes(32).toString('base64')
/**
 * A fixed production-like configuration, never the machine's environment or .env: the document
 * depends on settings (cookie names, the password rules), so they must be the same everywhere.
 * The secrets are throwaway values, new on every run (production refuses to start without them);
 * none of them reaches the document. Nothing listens on the database port: boot tolerates a
 * database that is down, and the document needs none.
 */
const FIXED_ENV = {
  NODE_ENV: 'production',
  LOG_LEVEL: 'silent',
  DATABASE_URL: 'postgres://openapi@127.0.0.1:9/openapi',
  MIGRATE_ON_START: 'false',
  JWT_SECRET: secret(),
  DATA_ENCRYPTION_KEYS: `openapi:${secret()}`,
  DATA_INDEX_KEY: secret(),
  PASSWORD_PEPPER: secret(),
  SMTP_URL: 'smtp://127.0.0.1:9',
  PUBLIC_APP_URL: 'https://app.example.com',
}

/** The top level in the order the specification lists it; any other key after them. */
const TOP_LEVEL = ['openapi', 'info', 'servers', 'tags', 'security', 'paths', 'components']
const byTopLevel = (a, b) => (TOP_LEVEL.indexOf(a) >>> 0) - (TOP_LEVEL.indexOf(b) >>> 0) || a.localeCompare(b)

/** Keys sorted at every level, except a schema's `properties` (declared order) and example data. */
function canonical(value, keepOrder = false, top = false) {
  if (Array.isArray(value)) return value.map((item) => canonical(item))
  if (typeof value !== 'object' || value === null) return value
  const keys = keepOrder ? Object.keys(value) : Object.keys(value).sort(top ? byTopLevel : undefined)
  return Object.fromEntries(
    keys.map((key) => {
      if (['example', 'examples', 'default', 'const', 'enum'].includes(key)) return [key, value[key]]
      return [key, canonical(value[key], key === 'properties')]
    }),
  )
}

async function produce() {
  // @fastify/autoload loads the .ts plugin and route files only when it knows a loader handles them.
  process.env.FASTIFY_AUTOLOAD_TYPESCRIPT ??= 'true'
  register()
  const { loadConfig } = await import('../lib/config.ts')
  const { buildApp } = await import('../app.ts')
  const app = await buildApp(loadConfig(FIXED_ENV))
  try {
    await app.ready()
    return `${JSON.stringify(canonical(app.swagger(), false, true), null, 2)}\n`
  } finally {
    await app.close()
  }
}

const produced = await produce()
const name = relative(process.cwd(), file) || file
if (!options.check) {
  writeFileSync(file, produced)
  console.error(`wrote ${name}`)
  process.exit(0)
}
let committed
try {
  committed = readFileSync(file, 'utf8')
} catch {
  console.error(`${name} is missing: run \`npm run openapi\` and commit it.`)
  process.exit(1)
}
if (committed === produced) {
  console.error(`${name} is current`)
  process.exit(0)
}
const [want, have] = [produced.split('\n'), committed.split('\n')]
const line = want.findIndex((text, i) => text !== have[i]) + 1 || want.length
console.error(
  `${name} is out of date: the routes and schemas now produce another OpenAPI document (first ` +
    `difference at line ${line}). Run \`npm run openapi\` and commit ${name}.`,
)
process.exit(1)
