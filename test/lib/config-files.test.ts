import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, loadConfig } from '../../lib/config.js'
import { DEV_JWT_SECRET, SECRET_SETTINGS } from '../../schemas/env.js'
import { PRODUCTION_MAIL, TEST_JWT_SECRET } from '../helper.js'

/** Secrets from files: NAME_FILE names a file holding NAME's value (Docker and Kubernetes secrets). */

const dir = mkdtempSync(join(tmpdir(), 'bulwark-secrets-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

let seq = 0
/** Writes `content` to a fresh file in the temporary directory and returns its path. */
function secretFile(content: string | Buffer): string {
  const path = join(dir, `secret-${++seq}`)
  writeFileSync(path, content, { mode: 0o600 })
  return path
}

const SECRET = TEST_JWT_SECRET
const DB_URL = 'postgres://bulwark:pw@db.internal:5432/bulwark?sslmode=verify-full'
const PROD = {
  NODE_ENV: 'production',
  DATABASE_URL: DB_URL,
  JWT_SECRET: SECRET,
  DATA_ENCRYPTION_KEYS: `k1:${Buffer.alloc(32, 1).toString('base64')}`,
  DATA_INDEX_KEY: Buffer.alloc(32, 2).toString('base64'),
  PASSWORD_PEPPER: Buffer.alloc(32, 3).toString('base64'),
  ...PRODUCTION_MAIL,
}

/** loadConfig's ConfigError message, or a failure if it did not throw one. */
function configError(env: Record<string, string>): string {
  try {
    loadConfig(env)
  } catch (error) {
    if (error instanceof ConfigError) return error.message
    throw error
  }
  throw new Error('expected a ConfigError')
}

t.test('a secret is read from NAME_FILE without its trailing newline', async (t) => {
  const config = loadConfig({
    JWT_SECRET_FILE: secretFile(`${SECRET}\n`),
    DATABASE_URL_FILE: secretFile(`${DB_URL}\r\n`),
    REDIS_URL_FILE: secretFile('redis://cache.internal:6379'),
  })
  t.equal(config.JWT_SECRET, SECRET, 'newline dropped')
  t.equal(config.DATABASE_URL, DB_URL, 'CRLF dropped')
  t.equal(config.REDIS_URL, 'redis://cache.internal:6379', 'no newline: kept as is')
})

t.test('a file value is trimmed as a variable is, so one secret has one value either way', async (t) => {
  for (const text of [`${SECRET}\n\n`, `  ${SECRET} \n`, `\t${SECRET}`]) {
    const fromFile = loadConfig({ JWT_SECRET_FILE: secretFile(text) }).JWT_SECRET
    t.equal(fromFile, loadConfig({ JWT_SECRET: text }).JWT_SECRET, JSON.stringify(text))
    t.equal(fromFile, SECRET)
  }
})

t.test('the list of secret settings is the one the issue names', async (t) => {
  t.same([...SECRET_SETTINGS].sort(), [
    'DATABASE_MIGRATION_URL',
    'DATABASE_URL',
    'DATA_ENCRYPTION_KEYS',
    'DATA_INDEX_KEY',
    'JWT_PREVIOUS_PUBLIC_KEY',
    'JWT_PRIVATE_KEY',
    'JWT_PUBLIC_KEY',
    'JWT_SECRET',
    'PASSWORD_PEPPER',
    'REDIS_URL',
    'SMTP_URL',
  ])
})

t.test('each SECRET_SETTINGS entry accepts its _FILE and gives the same value as the variable', async (t) => {
  for (const name of SECRET_SETTINGS) {
    const probe = `value-of-${name}`
    // Validation may refuse the probe (a URL pattern, a PEM length): then it must name the same
    // setting with the same words whether the value came from the variable or from the file.
    let fromEnv: unknown
    let fromFile: unknown
    try {
      fromEnv = loadConfig({ [name]: probe })[name]
    } catch (error) {
      fromEnv = (error as Error).message
    }
    try {
      fromFile = loadConfig({ [`${name}_FILE`]: secretFile(`${probe}\n`) })[name]
    } catch (error) {
      fromFile = (error as Error).message
    }
    t.equal(fromFile, fromEnv, `${name}_FILE behaves as ${name}`)
    t.notMatch(String(fromFile), /value-of-.*is invalid/, 'an error never shows the value')
  }
})

t.test('a PEM key from a file keeps its inner newlines', async (t) => {
  const body = 'A'.repeat(64)
  const pem = `-----BEGIN PUBLIC KEY-----\n${body}\n${body}\n-----END PUBLIC KEY-----`
  const config = loadConfig({
    JWT_PRIVATE_KEY_FILE: secretFile(`${pem.replaceAll('PUBLIC', 'PRIVATE')}\n`),
    JWT_PUBLIC_KEY_FILE: secretFile(`${pem}\n`),
  })
  t.equal(config.JWT_PUBLIC_KEY, pem)
  t.equal(config.JWT_PRIVATE_KEY, pem.replaceAll('PUBLIC', 'PRIVATE'))
})

t.test('production requirements are met by files', async (t) => {
  const config = loadConfig({
    ...PROD,
    JWT_SECRET: '',
    DATABASE_URL: '',
    JWT_SECRET_FILE: secretFile(`${SECRET}\n`),
    DATABASE_URL_FILE: secretFile(`${DB_URL}\n`),
  })
  t.equal(config.JWT_SECRET, SECRET)
  t.equal(config.DATABASE_URL, DB_URL)
})

t.test('setting both NAME and NAME_FILE is a configuration error', async (t) => {
  const message = configError({ JWT_SECRET: SECRET, JWT_SECRET_FILE: secretFile(`${SECRET}\n`) })
  t.equal(message, 'JWT_SECRET is invalid: set JWT_SECRET or JWT_SECRET_FILE, not both')
  t.notMatch(message, SECRET)
  t.match(
    configError({ DATABASE_URL: DB_URL, DATABASE_URL_FILE: secretFile(DB_URL) }),
    /^DATABASE_URL is invalid: .*not both$/,
  )
  // An empty variable is unset, so an empty NAME next to NAME_FILE is not "both".
  t.equal(loadConfig({ JWT_SECRET: ' ', JWT_SECRET_FILE: secretFile(SECRET) }).JWT_SECRET, SECRET)
})

t.test('an unreadable file is a one-line error naming NAME_FILE, never the content', async (t) => {
  const missing = configError({ JWT_SECRET_FILE: join(dir, 'no-such-file') })
  t.equal(missing, 'JWT_SECRET_FILE is invalid: the file cannot be read (ENOENT)')
  t.equal(
    configError({ DATABASE_URL_FILE: dir }),
    'DATABASE_URL_FILE is invalid: the file cannot be read (EISDIR)',
  )

  const locked = secretFile(SECRET)
  chmodSync(locked, 0o000)
  if (process.getuid?.() === 0) {
    t.comment('running as root: permission bits do not stop reading, EACCES case skipped')
  } else {
    t.equal(
      configError({ JWT_SECRET_FILE: locked }),
      'JWT_SECRET_FILE is invalid: the file cannot be read (EACCES)',
    )
  }

  const tooLarge = configError({ DATA_ENCRYPTION_KEYS_FILE: secretFile('k'.repeat(70_000)) })
  t.equal(tooLarge, 'DATA_ENCRYPTION_KEYS_FILE is invalid: the file is too large')

  // A file that is readable but holds a bad value: the error names the setting, not the content.
  const bad = configError({ DATABASE_URL_FILE: secretFile('mysql://root:hunter2@db/x\n') })
  t.match(bad, /^DATABASE_URL is invalid/)
  t.notMatch(bad, /hunter2|mysql/)
  for (const message of [missing, tooLarge, bad]) t.notMatch(message, /\n/, 'one line')
})

t.test('an empty file counts as unset, like an empty variable', async (t) => {
  t.equal(loadConfig({ JWT_SECRET_FILE: secretFile('') }).JWT_SECRET, DEV_JWT_SECRET)
  t.equal(loadConfig({ JWT_SECRET_FILE: secretFile('\n') }).JWT_SECRET, DEV_JWT_SECRET)
  t.equal(loadConfig({ REDIS_URL_FILE: secretFile('') }).REDIS_URL, undefined)
  t.equal(
    configError({ ...PROD, JWT_SECRET: '', JWT_SECRET_FILE: secretFile('\n') }),
    'JWT_SECRET is required when NODE_ENV=production',
  )
  t.equal(loadConfig({ JWT_SECRET_FILE: '' }).JWT_SECRET, DEV_JWT_SECRET, 'an empty NAME_FILE is unset')
})

t.test('only the listed secrets take a file: other NAME_FILE variables are ignored', async (t) => {
  const config = loadConfig({ PORT_FILE: secretFile('9999\n'), LOG_LEVEL_FILE: join(dir, 'absent') })
  t.equal(config.PORT, 3000)
  t.equal(config.LOG_LEVEL, 'info')
})
