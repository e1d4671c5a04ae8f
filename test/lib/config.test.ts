import t, { type Test } from 'tap'
import { ConfigError, developmentDefaults, loadConfig } from '../../lib/config.js'
import { DEV_DATA_ENCRYPTION_KEYS, DEV_DATA_INDEX_KEY, DEV_JWT_SECRET } from '../../schemas/env.js'
import { TEST_DATA_KEYS } from '../helper.js'

const SECRET = 'x'.repeat(32)
const PROD = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgres://u@db:5432/app?sslmode=verify-full',
  JWT_SECRET: SECRET,
  ...TEST_DATA_KEYS,
}

const fails = (env: Record<string, string>, message: RegExp) => async (t: Test) => {
  t.throws(() => loadConfig(env), { name: 'ConfigError', message })
}

t.test('defaults outside production are documented development values', async (t) => {
  const config = loadConfig({})
  t.equal(config.NODE_ENV, 'development')
  t.equal(config.HOST, '127.0.0.1')
  t.equal(config.PORT, 3000)
  t.equal(config.LOG_LEVEL, 'info')
  t.equal(config.BODY_LIMIT_BYTES, 65536)
  t.equal(config.JWT_SECRET, DEV_JWT_SECRET)
  t.equal(config.DATABASE_URL, undefined)
  t.same(developmentDefaults(config), [
    'JWT_SECRET',
    'DATA_ENCRYPTION_KEYS',
    'DATA_INDEX_KEY',
    'DATABASE_URL (embedded PostgreSQL)',
  ])
  t.ok(Object.isFrozen(config), 'config cannot be changed after boot')
})

t.test('strings from the environment are converted to typed values', async (t) => {
  const config = loadConfig({
    PORT: '8080',
    MIGRATE_ON_START: 'false',
    DATABASE_POOL_MAX: '3',
    HOST: ' 0.0.0.0 ',
  })
  t.equal(config.PORT, 8080)
  t.equal(config.MIGRATE_ON_START, false)
  t.equal(config.DATABASE_POOL_MAX, 3)
  t.equal(config.HOST, '0.0.0.0')
})

t.test('production requires DATABASE_URL and JWT_SECRET', async (t) => {
  t.test('complete production config loads', async (t) => {
    const config = loadConfig(PROD)
    t.equal(config.JWT_SECRET, SECRET)
    t.same(developmentDefaults(config), [])
  })
  t.test(
    'missing JWT_SECRET',
    fails({ ...PROD, JWT_SECRET: '' }, /^JWT_SECRET is required when NODE_ENV=production$/),
  )
  t.test(
    'missing DATABASE_URL',
    fails({ NODE_ENV: 'production', JWT_SECRET: SECRET }, /^DATABASE_URL is required/),
  )
  t.test('short JWT_SECRET', fails({ ...PROD, JWT_SECRET: 'short-secret' }, /^JWT_SECRET is invalid: .*32/))
  t.test(
    'missing data keys',
    fails({ ...PROD, DATA_INDEX_KEY: '' }, /^DATA_INDEX_KEY is required when NODE_ENV=production$/),
  )
  t.test(
    'the public development data keys',
    fails(
      {
        ...PROD,
        DATA_ENCRYPTION_KEYS: `k9:${Buffer.alloc(32, 9).toString('base64')},${DEV_DATA_ENCRYPTION_KEYS}`,
      },
      /^DATA_ENCRYPTION_KEYS is invalid: the development keys are not allowed in production$/,
    ),
  )
  t.test(
    'the public development index key',
    fails(
      { ...PROD, DATA_INDEX_KEY: DEV_DATA_INDEX_KEY },
      /^DATA_ENCRYPTION_KEYS is invalid: the development keys/,
    ),
  )
  t.test(
    'the development key bytes under another id or spelling',
    fails(
      {
        ...PROD,
        DATA_INDEX_KEY: Buffer.from(DEV_DATA_INDEX_KEY, 'base64').toString('base64url'),
      },
      /^DATA_ENCRYPTION_KEYS is invalid: the development keys/,
    ),
  )
  t.test(
    'the development encryption key under another id',
    fails(
      { ...PROD, DATA_ENCRYPTION_KEYS: `prod:${DEV_DATA_ENCRYPTION_KEYS.split(':')[1]}` },
      /^DATA_ENCRYPTION_KEYS is invalid: the development keys/,
    ),
  )
  t.test(
    'a malformed data key',
    fails(
      { ...PROD, DATA_ENCRYPTION_KEYS: 'k1:c2hvcnQ=' },
      /^DATA_ENCRYPTION_KEYS is invalid: must be distinct/,
    ),
  )
})

t.test('each invalid value names its variable, never its value', async (t) => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ PORT: 'abc' }, /^PORT is invalid/],
    [{ PORT: '70000' }, /^PORT is invalid: .*65535/],
    [{ NODE_ENV: 'staging' }, /^NODE_ENV is invalid/],
    [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL is invalid/],
    [{ DATABASE_URL: 'mysql://secretpass@x/db' }, /^DATABASE_URL is invalid/],
    [{ DATABASE_POOL_MAX: '0' }, /^DATABASE_POOL_MAX is invalid/],
    [{ BODY_LIMIT_BYTES: '12.5' }, /^BODY_LIMIT_BYTES is invalid/],
    [{ MIGRATE_ON_START: 'maybe' }, /^MIGRATE_ON_START is invalid/],
    [{ REQUEST_TIMEOUT_MS: '5000', HEADERS_TIMEOUT_MS: '6000' }, /^HEADERS_TIMEOUT_MS is invalid/],
  ]
  for (const [env, message] of cases) {
    const error = t.throws(() => loadConfig(env), ConfigError) as unknown as Error
    t.match(error.message, message, Object.keys(env).join(','))
    t.notMatch(error.message, /secretpass/, 'the value is not echoed')
    t.notMatch(error.message, /\n/, 'one line')
  }
})
