import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../../lib/config.js'
import { tlsOverrides } from '../../lib/db-tls.js'
import { PRODUCTION_MAIL, TEST_JWT_SECRET } from '../helper.js'
import { makeCertificates } from './db-tls-certs.js'

/**
 * The transport rules read at boot: in production a non-loopback PostgreSQL or Redis is reached over
 * TLS unless DATABASE_TLS / REDIS_TLS=disable says otherwise; sslmode and CA files are checked in
 * every environment. Errors name the variable, never its value.
 */

const key = () => randomBytes(32).toString('base64')
const PROD = {
  NODE_ENV: 'production',
  JWT_SECRET: TEST_JWT_SECRET,
  DATA_ENCRYPTION_KEYS: `k1:${key()}`,
  DATA_INDEX_KEY: key(),
  PASSWORD_PEPPER: key(),
  DATABASE_URL: 'postgres://app:s3cret@db.internal:5432/app?sslmode=verify-full',
  ...PRODUCTION_MAIL,
}
const DB_REFUSED =
  /^DATABASE_URL is invalid: a non-loopback host needs sslmode=require, verify-ca or verify-full when NODE_ENV=production \(or set DATABASE_TLS=disable\)$/
const REDIS_REFUSED =
  /^REDIS_URL is invalid: a non-loopback host needs rediss:\/\/ when NODE_ENV=production \(or set REDIS_TLS=disable\)$/

const dir = mkdtempSync(join(tmpdir(), 'bulwark-config-tls-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

t.test('production: a remote database with TLS loads', async (t) => {
  for (const mode of ['require', 'verify-ca', 'verify-full']) {
    const config = loadConfig({ ...PROD, DATABASE_URL: `postgres://app@db.internal/app?sslmode=${mode}` })
    t.same(tlsOverrides(config), [], `sslmode=${mode}`)
  }
})

t.test('production: a remote database without TLS is refused, naming the variable only', async (t) => {
  for (const query of ['', '?sslmode=disable', '?sslmode=allow', '?sslmode=prefer']) {
    const url = `postgres://app:s3cret@db.internal:5432/app${query}`
    const error = t.throws(() => loadConfig({ ...PROD, DATABASE_URL: url }), { name: 'ConfigError' })
    t.match((error as Error).message, DB_REFUSED, query || 'no sslmode')
    t.notMatch((error as Error).message, /db\.internal|s3cret/, 'the value is not shown')
  }
  t.throws(
    () => loadConfig({ ...PROD, DATABASE_URL: 'postgres://app@127.0.0.1:5432,db.internal:5432/app' }),
    { message: DB_REFUSED },
    'several hosts: every one must be loopback',
  )
  t.throws(
    () => loadConfig({ ...PROD, DATABASE_URL: 'postgres://app@10.1.2.3/app' }),
    { message: DB_REFUSED },
    'a private address is still another machine',
  )
})

t.test('production: loopback hosts and Unix sockets need no TLS', async (t) => {
  for (const host of [
    '127.0.0.1:5432',
    '127.0.0.53',
    'localhost:5432',
    '[::1]:5432',
    '%2Fvar%2Frun%2Fpostgresql',
  ]) {
    t.doesNotThrow(() => loadConfig({ ...PROD, DATABASE_URL: `postgres://app@${host}/app` }), host)
  }
})

t.test('production: the migration URL follows the same rule', async (t) => {
  t.throws(() => loadConfig({ ...PROD, DATABASE_MIGRATION_URL: 'postgres://owner@db.internal/app' }), {
    message: /^DATABASE_MIGRATION_URL is invalid: a non-loopback host needs sslmode=/,
  })
  t.doesNotThrow(() =>
    loadConfig({ ...PROD, DATABASE_MIGRATION_URL: 'postgres://owner@db.internal/app?sslmode=verify-full' }),
  )
})

t.test(
  'production: DATABASE_TLS=disable allows plaintext explicitly, and the boot log lists it',
  async (t) => {
    const config = loadConfig({
      ...PROD,
      DATABASE_URL: 'postgres://app@db.internal/app',
      DATABASE_MIGRATION_URL: 'postgres://owner@db.internal/app?sslmode=disable',
      DATABASE_TLS: 'disable',
    })
    t.same(tlsOverrides(config), [
      'DATABASE_URL (DATABASE_TLS=disable)',
      'DATABASE_MIGRATION_URL (DATABASE_TLS=disable)',
    ])
    t.throws(() => loadConfig({ ...PROD, DATABASE_TLS: 'off' }), { message: /^DATABASE_TLS is invalid/ })
  },
)

t.test('production: a remote Redis needs rediss:// unless REDIS_TLS=disable', async (t) => {
  t.throws(() => loadConfig({ ...PROD, REDIS_URL: 'redis://:pw@cache.internal:6379' }), {
    message: REDIS_REFUSED,
  })
  t.throws(
    () => loadConfig({ ...PROD, REDIS_URL: 'redis://cache.internal:6379', DATABASE_TLS: 'disable' }),
    { message: REDIS_REFUSED },
    'the database override does not cover Redis',
  )
  t.same(tlsOverrides(loadConfig({ ...PROD, REDIS_URL: 'rediss://cache.internal:6380' })), [])
  t.same(tlsOverrides(loadConfig({ ...PROD, REDIS_URL: 'redis://127.0.0.1:6379' })), [], 'loopback')
  const allowed = loadConfig({ ...PROD, REDIS_URL: 'redis://cache.internal:6379', REDIS_TLS: 'disable' })
  t.same(tlsOverrides(allowed), ['REDIS_URL (REDIS_TLS=disable)'])
})

t.test('outside production a remote plaintext connection is not refused', async (t) => {
  const config = loadConfig({
    NODE_ENV: 'development',
    DATABASE_URL: 'postgres://app@db.internal/app',
    REDIS_URL: 'redis://cache.internal:6379',
  })
  t.equal(config.DATABASE_URL, 'postgres://app@db.internal/app')
})

t.test('in every environment sslmode must be one libpq knows, said once', async (t) => {
  const cases = [
    'postgres://app@db/app?sslmode=verify_full',
    'postgres://app@db/app?sslmode=require&sslmode=disable',
    'postgres://app@db/app?ssl=true',
    'postgres://app@db/app?sslmode=verify-full&sslrootcert=system',
  ]
  for (const url of cases) {
    t.throws(() => loadConfig({ DATABASE_URL: url }), {
      name: 'ConfigError',
      message:
        /^DATABASE_URL is invalid: sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full \(ssl= and sslrootcert= are not read: use DATABASE_CA_FILE\)$/,
    })
  }
  t.throws(
    () => loadConfig({ DATABASE_MIGRATION_URL: 'postgres://o@10.0.0.1,10.0.0.2/app?sslmode=verify-full' }),
    {
      message:
        /^DATABASE_MIGRATION_URL is invalid: verify-full with several hosts needs host names, not IP addresses$/,
    },
  )
})

t.test('a CA file must be readable and hold a PEM certificate; its content is never shown', async (t) => {
  const garbage = join(dir, 'garbage.pem')
  writeFileSync(garbage, 'TOP-SECRET-NOT-A-CERTIFICATE\n')
  t.throws(() => loadConfig({ DATABASE_CA_FILE: join(dir, 'missing.pem') }), {
    message: /^DATABASE_CA_FILE is invalid: the file cannot be read \(ENOENT\)$/,
  })
  t.throws(() => loadConfig({ REDIS_CA_FILE: dir }), {
    message: /^REDIS_CA_FILE is invalid: the file cannot be read \(EISDIR\)$/,
  })
  const error = t.throws(() => loadConfig({ DATABASE_CA_FILE: garbage }), {
    message: /^DATABASE_CA_FILE is invalid: the file holds no PEM certificate$/,
  })
  t.notMatch((error as Error).message, /TOP-SECRET/)
  const { ca } = makeCertificates(dir)
  const config = loadConfig({ ...PROD, DATABASE_CA_FILE: ca, REDIS_CA_FILE: ca })
  t.equal(config.DATABASE_CA_FILE, ca)
})

t.test('production: an authority postgres.js reads differently is never taken for loopback', async (t) => {
  // postgres.js takes the host after the first @ and cuts at ? or / only: these connect to 192.0.2.2.
  for (const url of [
    'postgres://app:s3cret@192.0.2.2:55432,x@127.0.0.1/app',
    'postgres://app:s3cret@127.0.0.1#,192.0.2.2:55432/app',
  ]) {
    t.throws(() => loadConfig({ ...PROD, DATABASE_URL: url }), { message: DB_REFUSED }, url)
  }
  t.doesNotThrow(() => loadConfig({ ...PROD, DATABASE_URL: 'postgres://app:s3cret@127.0.0.1:5432/app' }))
})
