import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { loadConfig } from '../../lib/config.js'
import { PRODUCTION_MAIL, TEST_DATA_KEYS, TEST_JWT_SECRET } from '../helper.js'

/** The mail settings at boot: production sends real mail over protected links, or says it sends none. */

const PROD = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgres://u@db:5432/app?sslmode=verify-full',
  JWT_SECRET: TEST_JWT_SECRET,
  ...TEST_DATA_KEYS,
}
const refused = (t: Test, env: Record<string, string>, message: RegExp) =>
  t.throws(() => loadConfig(env), { name: 'ConfigError', message })

t.test('production without SMTP_URL is a boot error, unless mail is disabled', async (t) => {
  refused(
    t,
    { ...PROD, PUBLIC_APP_URL: 'https://app.example.com' },
    /^SMTP_URL is required when NODE_ENV=production \(or set MAIL_DISABLED=true\)$/,
  )
  const disabled = loadConfig({ ...PROD, MAIL_DISABLED: 'true' })
  t.equal(disabled.MAIL_DISABLED, true)
  t.equal(disabled.SMTP_URL, undefined)
  t.ok(loadConfig({ ...PROD, ...PRODUCTION_MAIL }), 'SMTP_URL and PUBLIC_APP_URL: it boots')
  t.equal(loadConfig({}).SMTP_URL, undefined, 'development needs none (.eml files)')
})

t.test('production needs PUBLIC_APP_URL, over https unless it is this host', async (t) => {
  const smtp = { SMTP_URL: 'smtps://relay.example.com:465' }
  refused(t, { ...PROD, ...smtp }, /^PUBLIC_APP_URL is required when NODE_ENV=production/)
  refused(
    t,
    { ...PROD, ...smtp, PUBLIC_APP_URL: 'http://app.example.com' },
    /^PUBLIC_APP_URL is invalid: a non-loopback host needs https:\/\/ when NODE_ENV=production$/,
  )
  t.equal(
    loadConfig({ ...PROD, ...smtp, PUBLIC_APP_URL: 'http://localhost:8080' }).PUBLIC_APP_URL,
    'http://localhost:8080',
  )
  t.equal(
    loadConfig({ PUBLIC_APP_URL: 'http://app.example.com' }).PUBLIC_APP_URL,
    'http://app.example.com',
    'development may',
  )
})

t.test('links never carry a query or a fragment of their own; SMTP_URL is smtp or smtps', async (t) => {
  refused(t, { PUBLIC_APP_URL: 'https://app.example.com/?next=x' }, /PUBLIC_APP_URL/)
  refused(t, { PUBLIC_APP_URL: 'https://app.example.com/#x' }, /PUBLIC_APP_URL/)
  refused(t, { SMTP_URL: 'http://relay.example.com' }, /SMTP_URL/)
  refused(t, { SMTP_URL: 'smtp://' }, /SMTP_URL/)
})

t.test('REQUIRE_VERIFIED_EMAIL with MAIL_DISABLED is refused: nothing could verify an address', async (t) => {
  refused(t, { REQUIRE_VERIFIED_EMAIL: 'true', MAIL_DISABLED: 'true' }, /^REQUIRE_VERIFIED_EMAIL is invalid/)
  t.equal(loadConfig({ REQUIRE_VERIFIED_EMAIL: 'true' }).REQUIRE_VERIFIED_EMAIL, true)
})

t.test('SMTP_URL (with its credentials) may come from SMTP_URL_FILE', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-smtp-secret-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'smtp_url')
  const url = 'smtps://bulwark:s3cret-relay-password@relay.example.com:465'
  writeFileSync(file, `${url}\n`, { mode: 0o600 })
  const config = loadConfig({ ...PROD, SMTP_URL_FILE: file, PUBLIC_APP_URL: 'https://app.example.com' })
  t.equal(config.SMTP_URL, url)
  refused(t, { SMTP_URL_FILE: file, SMTP_URL: url }, /SMTP_URL/)
})

t.test(
  'SMTP_URL query options cannot turn TLS down (nodemailer lets them override the transport’s)',
  async (t) => {
    const mail = { ...PROD, PUBLIC_APP_URL: 'https://app.example.com' }
    const message = /^SMTP_URL is invalid: TLS is chosen by smtp:\/\/ or smtps:\/\/, never by query options/
    // Each was sent in the clear or to any certificate: requireTLS=false sent a production mail to a
    // remote server in plain text (the transport's own requireTLS was overridden).
    for (const query of [
      'requireTLS=false',
      'ignoreTLS=true',
      'secure=false',
      'opportunisticTLS=true',
      'tls.rejectUnauthorized=false',
      'REQUIRETLS=false',
    ]) {
      refused(t, { ...mail, SMTP_URL: `smtp://relay.example.com:587?${query}` }, message)
      refused(t, { SMTP_URL: `smtps://relay.example.com:465?${query}` }, message)
    }
    t.equal(
      loadConfig({ ...mail, SMTP_URL: 'smtp://relay.example.com:587?name=app.example.com' }).SMTP_URL,
      'smtp://relay.example.com:587?name=app.example.com',
      'other options still pass',
    )
  },
)
