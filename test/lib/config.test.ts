import t, { type Test } from 'tap'
import { ConfigError, developmentDefaults, loadConfig } from '../../lib/config.js'
import {
  DEV_DATA_ENCRYPTION_KEYS,
  DEV_DATA_INDEX_KEY,
  DEV_JWT_SECRET,
  DEV_PASSWORD_PEPPER,
} from '../../schemas/env.js'
import { PRODUCTION_MAIL, TEST_DATA_KEYS, TEST_JWT_SECRET } from '../helper.js'

const SECRET = TEST_JWT_SECRET
const PROD = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgres://u@db:5432/app?sslmode=verify-full',
  JWT_SECRET: SECRET,
  ...TEST_DATA_KEYS,
  ...PRODUCTION_MAIL,
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
    'PASSWORD_PEPPER',
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
  // Regression (issue 12, RFC 8725 §3.5): these started silently in production.
  t.test(
    'the public development JWT_SECRET',
    fails(
      { ...PROD, JWT_SECRET: DEV_JWT_SECRET },
      /^JWT_SECRET is invalid: the development secret is not allowed/,
    ),
  )
  t.test('a patterned JWT_SECRET (32 times one character, or a short cycle)', async (t) => {
    for (const secret of ['a'.repeat(32), 'ab'.repeat(20), 'secret'.repeat(6), '0123'.repeat(10)]) {
      t.throws(() => loadConfig({ ...PROD, JWT_SECRET: secret }), {
        message: /^JWT_SECRET is invalid: too predictable for production/,
      })
    }
    t.doesNotThrow(() => loadConfig({ ...PROD, JWT_SECRET: SECRET }), 'random bytes pass')
  })
  t.test(
    'COOKIE_SECURE=false without the override',
    fails(
      { ...PROD, COOKIE_SECURE: 'false' },
      /^COOKIE_SECURE is invalid: false is not allowed when NODE_ENV=production unless ALLOW_INSECURE_COOKIES=true$/,
    ),
  )
  t.test('COOKIE_SECURE=false with the override', async (t) => {
    const config = loadConfig({ ...PROD, COOKIE_SECURE: 'false', ALLOW_INSECURE_COOKIES: 'true' })
    t.equal(config.COOKIE_SECURE, false)
  })
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

t.test('password settings: length floor, pepper and the breach service', async (t) => {
  const config = loadConfig({})
  t.equal(config.PASSWORD_MIN_LENGTH, 15, 'NIST SP 800-63B-4 minimum for a password used alone')
  t.equal(config.PASSWORD_PEPPER, DEV_PASSWORD_PEPPER)
  t.equal(config.PWNED_PASSWORDS_URL, undefined, 'the range check is off by default')
  t.equal(config.PWNED_PASSWORDS_FAIL_OPEN, true)
  t.equal(config.PWNED_PASSWORDS_TIMEOUT_MS, 2000)
  t.equal(
    loadConfig({ DATABASE_STATEMENT_TIMEOUT_MS: '1000' }).PWNED_PASSWORDS_TIMEOUT_MS,
    2000,
    'the timeout is only held against the deadline when the check is on',
  )
  t.equal(loadConfig({ PASSWORD_MIN_LENGTH: '4' }).PASSWORD_MIN_LENGTH, 4, 'outside production, any floor')
  t.equal(loadConfig({ ...PROD, PASSWORD_MIN_LENGTH: '8' }).PASSWORD_MIN_LENGTH, 8)
  const urlSafe = Buffer.alloc(48, 0xfb).toString('base64url')
  t.same(loadConfig({ PASSWORD_PEPPER: urlSafe }).PASSWORD_PEPPER, urlSafe, 'base64url is accepted')
  t.test(
    'production refuses a floor below 8',
    fails(
      { ...PROD, PASSWORD_MIN_LENGTH: '7' },
      /^PASSWORD_MIN_LENGTH is invalid: must be at least 8 when NODE_ENV=production$/,
    ),
  )
  t.test(
    'production requires the pepper',
    fails({ ...PROD, PASSWORD_PEPPER: '' }, /^PASSWORD_PEPPER is required when NODE_ENV=production$/),
  )
  t.test(
    'production refuses the public development pepper, in any spelling',
    fails(
      { ...PROD, PASSWORD_PEPPER: Buffer.from(DEV_PASSWORD_PEPPER, 'base64').toString('base64url') },
      /^PASSWORD_PEPPER is invalid: the development pepper is not allowed in production$/,
    ),
  )
  t.test(
    'regression: production refuses the development pepper with zero bytes appended (the same HMAC key)',
    fails(
      {
        ...PROD,
        PASSWORD_PEPPER: Buffer.concat([
          Buffer.from(DEV_PASSWORD_PEPPER, 'base64'),
          Buffer.alloc(3),
        ]).toString('base64'),
      },
      /^PASSWORD_PEPPER is invalid: the development pepper is not allowed in production$/,
    ),
  )
  t.test(
    'a pepper under 32 bytes',
    fails(
      { PASSWORD_PEPPER: Buffer.alloc(31, 7).toString('base64') },
      /^PASSWORD_PEPPER is invalid: .*32 bytes$/,
    ),
  )
  t.test(
    'a pepper that is not base64',
    fails({ PASSWORD_PEPPER: 'not base64!' }, /^PASSWORD_PEPPER is invalid/),
  )
  t.test(
    'production reaches another host only over https',
    fails(
      { ...PROD, PWNED_PASSWORDS_URL: 'http://pwned.internal' },
      /^PWNED_PASSWORDS_URL is invalid: a non-loopback host needs https:\/\/ when NODE_ENV=production$/,
    ),
  )
  t.equal(
    loadConfig({ ...PROD, PWNED_PASSWORDS_URL: 'http://127.0.0.1:8080' }).PWNED_PASSWORDS_URL,
    'http://127.0.0.1:8080',
    'a loopback stand-in may use http',
  )
  t.test(
    'an unparsable URL',
    fails({ PWNED_PASSWORDS_URL: 'https://a b' }, /^PWNED_PASSWORDS_URL is invalid/),
  )
  t.test(
    'a breach-check timeout that outlives the request deadline',
    fails(
      { PWNED_PASSWORDS_URL: 'https://api.pwnedpasswords.com', PWNED_PASSWORDS_TIMEOUT_MS: '5000' },
      /^PWNED_PASSWORDS_TIMEOUT_MS is invalid: must be less than DATABASE_STATEMENT_TIMEOUT_MS$/,
    ),
  )
})
