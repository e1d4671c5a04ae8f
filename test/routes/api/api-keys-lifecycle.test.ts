import t, { type Test } from 'tap'
import type { App } from '../../../app.js'
import {
  build,
  createApiKey,
  expectProblem,
  injectAs,
  injectWithKey,
  OTHER_PASSWORD,
  resetLinkToken,
  resetPassword,
  signUp,
  startSmtpServer,
  TEST_PASSWORD,
} from '../../helper.js'

/** API keys over time: revocation by owner changes, admin keys, rate limits, batched last use, CSRF. */

const INVALID_TOKEN = 'urn:bulwark:problem:invalid-token'
const buildApp = (t: Test, env: Record<string, string> = {}) =>
  build(t, { env: { BCRYPT_COST: '4', ...env } })

const revokedReasons = async (app: App, keyId: string) =>
  (
    await app.sql<{ revokedReason: string | null }[]>`select revoked_reason from api_keys where id = ${keyId}`
  )[0]?.revokedReason

t.test('owner disabled: every key is revoked in the same change, and refused', async (t) => {
  const app = await buildApp(t)
  const admin = await signUp(app, 'kadm', { role: 'admin' })
  const user = await signUp(app, 'kdis')
  const key = await createApiKey(user, ['comments:read', 'profile:read'])
  t.equal((await injectWithKey(app, key.key)('/api/users/me')).statusCode, 200)
  const res = await admin.inject({
    method: 'PATCH',
    url: `/api/admin/users/${user.id}`,
    payload: { disabled: true },
  })
  t.equal(res.statusCode, 200, res.body)
  expectProblem(t, await injectWithKey(app, key.key)('/api/users/me'), 401, INVALID_TOKEN)
  t.equal(await revokedReasons(app, key.id), 'owner_disabled')
  // Enabled again, the key stays revoked.
  await admin.inject({ method: 'PATCH', url: `/api/admin/users/${user.id}`, payload: { disabled: false } })
  expectProblem(t, await injectWithKey(app, key.key)('/api/users/me'), 401, INVALID_TOKEN)
  const [audit] = await app.sql<{ detail: Record<string, string> }[]>`
    select detail from audit_events where event = 'auth.api_key.revoked' and user_id = ${user.id}`
  t.match(audit?.detail, { keyIds: key.id, reason: 'owner_disabled' })
})

t.test(
  'admin keys: admin scope works for an enabled admin; demotion revokes admin-scoped keys only',
  async (t) => {
    const app = await buildApp(t)
    const root = await signUp(app, 'kroot', { role: 'admin' })
    const admin = await signUp(app, 'kad', { role: 'admin' })
    const adminKey = await createApiKey(admin, ['admin', 'profile:read'])
    const plainKey = await createApiKey(admin, ['profile:read'])
    t.equal(
      (await injectWithKey(app, adminKey.key)('/api/admin/users')).statusCode,
      200,
      'admin key on admin API',
    )
    const plain = await injectWithKey(app, plainKey.key)('/api/admin/users')
    expectProblem(t, plain, 403, 'urn:bulwark:problem:insufficient-scope', 'no admin scope')
    // Unmatched spellings of the admin API never take a key either.
    t.equal((await injectWithKey(app, adminKey.key)('/api/ADMIN/users')).statusCode, 401)

    const demote = await root.inject({
      method: 'PATCH',
      url: `/api/admin/users/${admin.id}`,
      payload: { role: 'user' },
    })
    t.equal(demote.statusCode, 200, demote.body)
    expectProblem(
      t,
      await injectWithKey(app, adminKey.key)('/api/admin/users'),
      401,
      INVALID_TOKEN,
      'demoted',
    )
    t.equal(await revokedReasons(app, adminKey.id), 'owner_demoted')
    t.equal(await revokedReasons(app, plainKey.id), null, 'a key without the admin scope lives on')
    t.equal((await injectWithKey(app, plainKey.key)('/api/users/me')).statusCode, 200)
  },
)

t.test(
  'admin scope: the owner is read fresh at each use (role changed behind the API is refused)',
  async (t) => {
    const app = await buildApp(t)
    const admin = await signUp(app, 'kfr', { role: 'admin' })
    const key = await createApiKey(admin, ['admin'])
    await app.sql`update users set role = 'user' where id = ${admin.id}`
    expectProblem(
      t,
      await injectWithKey(app, key.key)('/api/admin/users'),
      403,
      'urn:bulwark:problem:forbidden',
    )
  },
)

t.test('MFA_REQUIRED_ROLES=admin: no admin key from a session without a second factor', async (t) => {
  const app = await buildApp(t, { MFA_REQUIRED_ROLES: 'admin' })
  const admin = await signUp(app, 'kmfa', { role: 'admin' })
  const payload = { name: 'ops', scopes: ['admin'] }
  const res = await admin.inject({ method: 'POST', url: '/api/auth/api-keys', payload })
  expectProblem(t, res, 403, 'urn:bulwark:problem:mfa-required')
  // A key made from a session with MFA carries its amr; one whose amr lacks it is refused on use
  // (made here through an instance without the rule, as before MFA_REQUIRED_ROLES was set).
  const lax = await buildApp(t)
  const key = await createApiKey({ inject: injectAs(lax, admin) }, ['profile:read'])
  await app.sql`update api_keys set scopes = '{admin}' where id = ${key.id}`
  const use = await injectWithKey(app, key.key)('/api/admin/users')
  expectProblem(
    t,
    use,
    403,
    'urn:bulwark:problem:mfa-required',
    'the key meets the rule only through its amr',
  )
  await app.sql`update api_keys set amr = '{pwd,otp,mfa}' where id = ${key.id}`
  t.equal((await injectWithKey(app, key.key)('/api/admin/users')).statusCode, 200)
})

for (const revoke of [true, false]) {
  t.test(`password change with API_KEYS_REVOKE_ON_PASSWORD_CHANGE=${revoke}`, async (t) => {
    const app = await buildApp(t, { API_KEYS_REVOKE_ON_PASSWORD_CHANGE: String(revoke) })
    const user = await signUp(app, 'kpw')
    const key = await createApiKey(user, ['profile:read'])
    const payload = { currentPassword: TEST_PASSWORD, newPassword: OTHER_PASSWORD }
    const res = await user.inject({ method: 'PUT', url: '/api/users/me/password', payload })
    t.equal(res.statusCode, 204, res.body)
    const use = await injectWithKey(app, key.key)('/api/users/me')
    t.equal(use.statusCode, revoke ? 401 : 200)
    t.equal(await revokedReasons(app, key.id), revoke ? 'password_changed' : null)
  })
}

t.test('password reset revokes the keys', async (t) => {
  const smtp = await startSmtpServer(t)
  const app = await buildApp(t, smtp.env)
  const user = await signUp(app, 'kreset')
  const key = await createApiKey(user, ['profile:read'])
  const token = await resetLinkToken(app, smtp, `${user.username}@example.com`)
  t.equal((await resetPassword(app, { token, newPassword: OTHER_PASSWORD })).statusCode, 204)
  expectProblem(t, await injectWithKey(app, key.key)('/api/users/me'), 401, INVALID_TOKEN)
  t.equal(await revokedReasons(app, key.id), 'password_reset')
})

t.test(
  'rate limit per key: a key has its own budget; a forged key with its id cannot spend it',
  async (t) => {
    const app = await buildApp(t, { API_KEY_RATE_LIMIT_MAX: '3', RATE_LIMIT_MAX: '50' })
    const user = await signUp(app, 'krl')
    const key = await createApiKey(user, ['comments:read'])
    const other = await createApiKey(user, ['comments:read'])
    const use = (k: string, remoteAddress = '192.0.2.10') =>
      injectWithKey(app, k)({ url: '/api/comments', remoteAddress })
    // The first use verifies the secret (counted against the address); then the key's budget of 3.
    t.equal((await use(key.key)).statusCode, 200)
    const forged = `bwk_${key.id}_${'0'.repeat(64)}`
    for (let i = 0; i < 5; i++) t.equal((await use(forged, '198.51.100.7')).statusCode, 401, 'forged: 401')
    for (let i = 0; i < 3; i++) t.equal((await use(key.key)).statusCode, 200, `use ${i + 1} of 3`)
    const limited = await use(key.key)
    expectProblem(t, limited, 429, 'urn:bulwark:problem:rate-limited')
    t.equal(limited.headers['ratelimit-limit'], '3', "the key's own limit")
    t.equal(
      (await use(key.key, '203.0.113.99')).statusCode,
      429,
      'the budget follows the key, not the address',
    )
    t.equal((await use(other.key)).statusCode, 200, 'another key from the same address has its own budget')
  },
)

t.test('last_used_at: no write per request, one statement for many keys, flushed on close', async (t) => {
  const app = await buildApp(t, { API_KEY_LAST_USED_FLUSH_MS: '3600000' })
  const user = await signUp(app, 'klu')
  const keys = [
    await createApiKey(user, ['comments:read']),
    await createApiKey(user, ['comments:read']),
    await createApiKey(user, ['comments:read']),
  ]
  for (const key of keys) for (let i = 0; i < 4; i++) await injectWithKey(app, key.key)('/api/comments')
  const lastUsed = async () =>
    (
      await app.sql<{ lastUsedAt: Date | null }[]>`
      select last_used_at from api_keys where user_id = ${user.id} order by id`
    ).map((r) => r.lastUsedAt)
  t.same(await lastUsed(), [null, null, null], 'twelve uses, no write')
  t.equal(app.apiKeyUsage.pending(), 3, 'three keys noted in memory')
  t.equal(await app.apiKeyUsage.flush(app.sql), 3, 'one statement updates the three rows')
  const after = await lastUsed()
  t.ok(
    after.every((d) => d instanceof Date && Math.abs(d.getTime() - Date.now()) < 60_000),
    'all set',
  )
  const listed = (await user.inject('/api/auth/api-keys')).json<{ items: { lastUsedAt: string | null }[] }>()
  t.ok(
    listed.items.every((k) => k.lastUsedAt !== null),
    'the list shows it',
  )

  // Uses not yet flushed are written when the app closes.
  const second = await buildApp(t, { API_KEY_LAST_USED_FLUSH_MS: '3600000' })
  const firstKey = keys[0]?.id ?? ''
  await app.sql`update api_keys set last_used_at = null where id = ${firstKey}`
  await injectWithKey(app, keys[0]?.key ?? '')('/api/comments')
  await app.close()
  const [row] = await second.sql<
    { lastUsedAt: Date | null }[]
  >`select last_used_at from api_keys where id = ${firstKey}`
  t.ok(row?.lastUsedAt instanceof Date, 'flushed on close')
})

t.test('the first use from a new address is audited once', async (t) => {
  const app = await buildApp(t)
  const user = await signUp(app, 'kna')
  const key = await createApiKey(user, ['comments:read'])
  const from = (remoteAddress: string) => injectWithKey(app, key.key)({ url: '/api/comments', remoteAddress })
  for (const address of ['192.0.2.1', '192.0.2.1', '192.0.2.2', '192.0.2.1', '192.0.2.2']) await from(address)
  const events = await app.sql<{ ip: string | null }[]>`
    select detail from audit_events where event = 'auth.api_key.new_address' and detail->>'keyId' = ${key.id}`
  t.equal(events.length, 2, 'two addresses, two events')
  const [stored] = await app.sql<{ n: number }[]>`
    select count(*)::int as n from api_key_addresses where key_id = ${key.id}`
  t.equal(stored?.n, 2)
  const clear =
    await app.sql`select 1 from api_key_addresses where encode(address_hash, 'escape') like '%192.0.2%'`
  t.equal(clear.length, 0, 'no address in clear')
})

t.test(
  'CSRF: a key-authenticated unsafe request from a foreign Origin works; a cookie one does not',
  async (t) => {
    const app = await buildApp(t)
    const user = await signUp(app, 'kcsrf')
    const key = await createApiKey(user, ['comments:write'])
    const origin = 'https://evil.example'
    const withKey = await injectWithKey(
      app,
      key.key,
    )({
      method: 'POST',
      url: '/api/comments',
      headers: { origin, 'sec-fetch-site': 'cross-site' },
      payload: { body: 'bot' },
    })
    t.equal(withKey.statusCode, 201, 'a key is no cookie: no CSRF check')
    // A stray session cookie beside the key changes nothing: the header authenticates, not the cookie.
    const keyAndCookie = await injectWithKey(
      app,
      key.key,
    )({
      method: 'POST',
      url: '/api/comments',
      headers: { origin, 'sec-fetch-site': 'cross-site' },
      cookies: { access_token: user.accessToken },
      payload: { body: 'bot' },
    })
    t.equal(keyAndCookie.statusCode, 201, 'the Authorization header decides')
    t.equal(keyAndCookie.json<{ author: { id: string } }>().author.id, user.id)
    const withCookie = await app.inject({
      method: 'POST',
      url: '/api/comments',
      headers: { origin, 'sec-fetch-site': 'cross-site' },
      cookies: { access_token: user.accessToken },
      payload: { body: 'csrf' },
    })
    expectProblem(t, withCookie, 403, 'urn:bulwark:problem:csrf-rejected')
  },
)
