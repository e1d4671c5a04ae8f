import t, { type Test } from 'tap'
import { loadConfig } from '../../lib/config.js'
import { PRODUCTION_MAIL, TEST_DATA_KEYS, TEST_JWT_SECRET } from '../helper.js'

/** The passkey settings at boot: exact origins over https, each on the RP ID or a subdomain of it. */

const PROD = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgres://u@db:5432/app?sslmode=verify-full',
  JWT_SECRET: TEST_JWT_SECRET,
  ...TEST_DATA_KEYS,
  ...PRODUCTION_MAIL,
}
const refused = (t: Test, env: Record<string, string>, message: RegExp) =>
  t.throws(() => loadConfig(env), { name: 'ConfigError', message }, JSON.stringify(env.WEBAUTHN_ORIGINS))

t.test('defaults: the development origin outside production, off in production', async (t) => {
  const dev = loadConfig({})
  t.same(dev.WEBAUTHN_ORIGINS, ['http://localhost:3000'])
  t.equal(dev.WEBAUTHN_RP_ID, 'localhost')
  t.equal(dev.WEBAUTHN_RP_NAME, 'Bulwark')
  t.same(loadConfig(PROD).WEBAUTHN_ORIGINS, [], 'production chooses its RP ID on purpose')
  const off = loadConfig({ WEBAUTHN_ORIGINS: 'none' })
  t.same(off.WEBAUTHN_ORIGINS, [], 'none turns passkeys off')
  const prod = loadConfig({
    ...PROD,
    WEBAUTHN_ORIGINS: 'https://app.example.com, https://example.com',
    WEBAUTHN_RP_ID: 'Example.com',
  })
  t.same(prod.WEBAUTHN_ORIGINS, ['https://app.example.com', 'https://example.com'])
  t.equal(prod.WEBAUTHN_RP_ID, 'example.com')
})

t.test('each origin is exact, secure, and on the RP ID', async (t) => {
  const exact = /^WEBAUTHN_ORIGINS is invalid: each entry must be an exact origin/
  for (const origin of [
    'https://app.example.com/',
    'https://app.example.com/login',
    'app.example.com',
    'https://APP.example.com',
    'https://app.example.com:443',
    'ftp://example.com',
    'https://*.example.com',
  ]) {
    refused(t, { WEBAUTHN_ORIGINS: origin }, exact)
  }
  const secure = /^WEBAUTHN_ORIGINS is invalid: use https:\/\//
  refused(t, { WEBAUTHN_ORIGINS: 'http://app.example.com' }, secure)
  refused(t, { ...PROD, WEBAUTHN_ORIGINS: 'http://localhost:3000' }, secure)
  t.ok(loadConfig({ WEBAUTHN_ORIGINS: 'http://localhost:8080' }), 'http on this machine outside production')
  refused(
    t,
    { WEBAUTHN_ORIGINS: 'https://app.example.com,https://evil.com' },
    /^WEBAUTHN_ORIGINS is invalid: the host of https:\/\/evil.com is neither WEBAUTHN_RP_ID \(app.example.com\)/,
  )
  refused(
    t,
    { WEBAUTHN_ORIGINS: 'https://notexample.com', WEBAUTHN_RP_ID: 'example.com' },
    /the host of https:\/\/notexample.com is neither/,
  )
  refused(t, { WEBAUTHN_ORIGINS: 'https://127.0.0.1' }, /^WEBAUTHN_RP_ID is invalid: must be a domain name/)
  refused(t, { WEBAUTHN_RP_ID: 'example.com/x' }, /^WEBAUTHN_RP_ID is invalid/)
})
