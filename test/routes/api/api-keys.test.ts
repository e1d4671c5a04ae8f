import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import type { App } from '../../../app.js'
import { AUDIT_REFUSALS_MAX } from '../../../plugins/app/security-audit.js'
import {
  build,
  type CreatedKey,
  createApiKey,
  expectProblem,
  injectWithKey,
  type SignedInUser,
  signUp,
} from '../../helper.js'

/** API keys: create, list, use per scope, revoke, and each refusal an attacker meets (issue 16). */

const INVALID_TOKEN = 'urn:bulwark:problem:invalid-token'
const INSUFFICIENT_SCOPE = 'urn:bulwark:problem:insufficient-scope'
const NOT_ALLOWED = 'urn:bulwark:problem:api-key-not-allowed'
const KEY_FORMAT = /^bwk_([0-9a-f]{16})_([0-9a-f]{64})$/

/**
 * A random client address: refusals are audited within a budget per address and minute (shared in
 * Redis across runs), so a test that counts audit rows sends each refusal from an address of its own.
 */
const anyAddress = () => `10.${Array.from(randomBytes(3)).join('.')}`

const buildApp = (t: Test, env: Record<string, string> = {}) =>
  build(t, { env: { BCRYPT_COST: '4', ...env } })

async function auditEvents(app: App, event: string, userId: string | null = null) {
  return app.sql<{ userId: string | null; detail: Record<string, unknown> }[]>`
    select user_id, detail from audit_events
    where event = ${event} ${userId ? app.sql`and user_id = ${userId}` : app.sql``}
    order by created_at
  `
}

async function refusedFor(app: App, keyId: string) {
  return app.sql<{ detail: { reason: string } }[]>`
    select detail from audit_events where event = 'auth.api_key.refused' and detail->>'keyId' = ${keyId}
    order by created_at
  `
}

function expectInvalid(t: Test, res: Awaited<ReturnType<App['inject']>>, label: string) {
  expectProblem(t, res, 401, INVALID_TOKEN, label)
  t.equal(res.headers['www-authenticate'], 'Bearer error="invalid_token"', `${label}: RFC 6750 header`)
}

t.test('create: the key is shown once, 256-bit secret, only a hash stored, audited', async (t) => {
  const app = await buildApp(t)
  const user = await signUp(app, 'keyc')
  const res = await user.inject({
    method: 'POST',
    url: '/api/auth/api-keys',
    payload: { name: '  ci bot  ', scopes: ['comments:read', 'profile:read'], expiresInDays: 7 },
  })
  t.equal(res.statusCode, 201)
  t.equal(res.headers['cache-control'], 'no-store')
  const body = res.json<CreatedKey & { name: string; createdAt: string }>()
  const match = KEY_FORMAT.exec(body.key)
  t.ok(match, 'bwk_<16 hex>_<64 hex>')
  t.equal(match?.[1], body.id)
  t.equal((match?.[2]?.length ?? 0) * 4, 256, 'a 256-bit secret')
  t.equal(body.prefix, `bwk_${body.id}`)
  t.equal(body.name, 'ci bot', 'trimmed')
  const days = (Date.parse(body.expiresAt) - Date.parse(body.createdAt)) / 86_400_000
  t.ok(Math.abs(days - 7) < 0.01, 'expires in 7 days')

  const [row] = await app.sql<{ secretHash: Buffer; dump: string }[]>`
    select secret_hash, row_to_json(k)::text as dump from api_keys k where id = ${body.id}
  `
  const secret = match?.[2] ?? ''
  t.equal(row?.secretHash.length, 32, 'a 32-byte hash')
  t.notOk(row?.dump.includes(secret), 'the secret is nowhere in the row')
  t.notOk(row?.dump.includes(Buffer.from(secret).toString('hex')), 'nor its bytes')

  const list = await user.inject('/api/auth/api-keys')
  t.equal(list.statusCode, 200)
  t.notOk(list.body.includes(secret), 'the list never shows the secret')
  t.match(list.json(), {
    items: [
      { id: body.id, prefix: body.prefix, scopes: ['comments:read', 'profile:read'], lastUsedAt: null },
    ],
  })
  const notices = await app.sql<{ template: string }[]>`
    select template from outbox where user_id = ${user.id} and template = 'api-key-created'`
  t.equal(notices.length, 1, 'the owner is told by mail (a security notice)')
  const [created] = await auditEvents(app, 'auth.api_key.created', user.id)
  t.match(created?.detail, { keyId: body.id, scopes: 'comments:read profile:read' })
})

t.test('create: body rules, default expiry, per-user cap, admin scope for admins only', async (t) => {
  const app = await buildApp(t, { API_KEYS_MAX_PER_USER: '2', API_KEY_MAX_EXPIRES_DAYS: '30' })
  const user = await signUp(app, 'keyb')
  const post = (payload: object) => user.inject({ method: 'POST', url: '/api/auth/api-keys', payload })
  for (const payload of [
    { name: '', scopes: ['comments:read'] },
    { name: '   ', scopes: ['comments:read'] },
    { name: 'a\u0000b', scopes: ['comments:read'] },
    { name: 'x'.repeat(65), scopes: ['comments:read'] },
    { name: 'x', scopes: [] },
    { name: 'x', scopes: ['comments:read', 'comments:read'] },
    { name: 'x', scopes: ['comments:delete'] },
    { name: 'x', scopes: ['comments:read'], expiresInDays: 31 },
    { name: 'x', scopes: ['comments:read'], expiresInDays: 0 },
    { name: 'x', scopes: ['comments:read'], extra: 1 },
  ]) {
    expectProblem(
      t,
      await post(payload),
      400,
      'urn:bulwark:problem:validation-error',
      JSON.stringify(payload),
    )
  }
  const admin = await post({ name: 'x', scopes: ['admin'] })
  expectProblem(t, admin, 403, 'urn:bulwark:problem:forbidden', 'admin scope for a user')
  const first = (await post({ name: 'a', scopes: ['comments:read'] })).json<
    CreatedKey & { createdAt: string }
  >()
  const days = (Date.parse(first.expiresAt) - Date.parse(first.createdAt)) / 86_400_000
  t.ok(Math.abs(days - 30) < 0.01, 'the default is capped by API_KEY_MAX_EXPIRES_DAYS')
  t.equal((await post({ name: 'b', scopes: ['comments:read'] })).statusCode, 201)
  expectProblem(t, await post({ name: 'c', scopes: ['comments:read'] }), 409, 'urn:bulwark:problem:conflict')
  const notices = await app.sql`
    select 1 from outbox where user_id = ${user.id} and template = 'api-key-created'`
  t.equal(notices.length, 2, 'a refused creation tells no one')
})

t.test('create and revoke need a recent authentication; another user’s key is 404', async (t) => {
  const app = await buildApp(t)
  const user = await signUp(app, 'keyr')
  const other = await signUp(app, 'keyo')
  const key = await createApiKey(user, ['comments:read'])
  expectProblem(t, await other.inject({ method: 'DELETE', url: `/api/auth/api-keys/${key.id}` }), 404)
  await app.sql`update sessions set auth_time = now() - interval '1 hour' where user_id = ${user.id}`
  const reauth = 'urn:bulwark:problem:reauthentication-required'
  const payload = { name: 'late', scopes: ['comments:read'] }
  expectProblem(t, await user.inject({ method: 'POST', url: '/api/auth/api-keys', payload }), 401, reauth)
  expectProblem(t, await user.inject({ method: 'DELETE', url: `/api/auth/api-keys/${key.id}` }), 401, reauth)
  const still = await injectWithKey(app, key.key)('/api/comments')
  t.equal(still.statusCode, 200, 'the key still works')
})

t.test('use: each scope opens its routes; a missing scope is 403 insufficient-scope', async (t) => {
  const app = await buildApp(t)
  const user = await signUp(app, 'keyu')
  const reader = injectWithKey(app, (await createApiKey(user, ['comments:read'])).key)
  const writer = injectWithKey(app, (await createApiKey(user, ['comments:write'])).key)
  const profile = injectWithKey(app, (await createApiKey(user, ['profile:read'])).key)

  const created = await writer({ method: 'POST', url: '/api/comments', payload: { body: 'from a bot' } })
  t.equal(created.statusCode, 201, 'comments:write posts')
  const id = created.json<{ id: string; authorId: string }>().id
  t.equal((await reader(`/api/comments/${id}`)).statusCode, 200, 'comments:read reads one')
  t.equal((await reader('/api/comments')).statusCode, 200, 'comments:read lists')
  // Fastify's HEAD twin of a GET carries the GET's scope.
  t.equal((await reader({ method: 'HEAD', url: '/api/comments' })).statusCode, 200, 'HEAD with comments:read')
  t.equal((await profile({ method: 'HEAD', url: '/api/comments' })).statusCode, 403, 'HEAD without it')
  const patched = await writer({ method: 'PATCH', url: `/api/comments/${id}`, payload: { body: 'edited' } })
  t.equal(patched.statusCode, 200, 'comments:write edits')
  const me = await profile('/api/users/me')
  t.equal(me.statusCode, 200, 'profile:read reads /me')
  t.equal(me.json<{ user: { id: string } }>().user.id, user.id)
  t.equal((await profile(`/api/users/${user.username}`)).statusCode, 200, 'profile:read reads a profile')

  const cases: [ReturnType<typeof injectWithKey>, string, string, string][] = [
    [reader, 'POST', '/api/comments', 'comments:write'],
    [reader, 'DELETE', `/api/comments/${id}`, 'comments:write'],
    [writer, 'GET', '/api/comments', 'comments:read'],
    [writer, 'GET', '/api/users/me', 'profile:read'],
    [profile, 'GET', `/api/comments/${id}`, 'comments:read'],
    [profile, 'GET', '/api/admin/users', 'admin'],
  ]
  for (const [send, method, url, scope] of cases) {
    const res = await send({
      method: method as 'GET',
      url,
      ...(method === 'POST' ? { payload: { body: 'x' } } : {}),
    })
    expectProblem(t, res, 403, INSUFFICIENT_SCOPE, `${method} ${url}`)
    t.equal(res.headers['www-authenticate'], `Bearer error="insufficient_scope", scope="${scope}"`)
  }
  t.equal(
    (await writer({ method: 'DELETE', url: `/api/comments/${id}` })).statusCode,
    204,
    'comments:write deletes',
  )
  const refusals = await auditEvents(app, 'auth.api_key.refused', user.id)
  t.equal(
    refusals.filter((r) => r.detail.reason === 'insufficient_scope').length,
    cases.length + 1, // and the HEAD above
    'each refusal audited',
  )
})

t.test(
  'refused keys: wrong secret, unknown id, malformed, expired, revoked: 401 invalid_token, audited',
  async (t) => {
    const app = await buildApp(t)
    const user = await signUp(app, 'keyx')
    const key = await createApiKey(user, ['comments:read', 'profile:read'])
    const secret = key.key.slice(-64)
    const use = (token: string) =>
      injectWithKey(app, token)({ url: '/api/users/me', remoteAddress: anyAddress() })
    t.equal((await use(key.key)).statusCode, 200, 'the key works')

    const wrong = `bwk_${key.id}_${secret.slice(0, 63)}${secret.endsWith('0') ? '1' : '0'}`
    expectInvalid(t, await use(wrong), 'wrong secret')
    expectInvalid(t, await use(`bwk_0000000000000000_${secret}`), 'unknown id')
    const malformed = [
      'bwk_',
      `bwk_${key.id}`,
      `bwk_${key.id}_`,
      `bwk_${key.id}_${secret}0`,
      `bwk_${key.id}_${secret.toUpperCase()}`,
      `bwk_${key.id.toUpperCase()}_${secret}`,
      `bwk_${key.id}_${secret.slice(1)}`,
      `bwk_${key.id}__${secret}`,
      `bwk_${key.id}_${secret.slice(0, 62)}-_`,
      `BWK_${key.id}_${secret}`,
      `${key.key}.x`,
      `${key.key}~`,
      `${key.key}_`,
    ]
    const countMalformed = async () =>
      (
        await app.sql<{ n: number }[]>`
          select count(*)::int as n from audit_events
          where event = 'auth.api_key.refused' and detail->>'reason' = 'malformed'`
      )[0]?.n ?? 0
    const before = await countMalformed()
    for (const bad of malformed) {
      const res = await use(bad)
      t.equal(res.statusCode, 401, `malformed ${bad.slice(0, 30)}…${bad.slice(-3)}`)
    }
    // One anchored pattern decides, before any lookup: each is audited as malformed.
    t.equal((await countMalformed()) - before, malformed.length, 'each audited as malformed')
    // On a public route too: a key sent must be good.
    const onPublic = await injectWithKey(app, wrong)({ url: '/api/comments', remoteAddress: anyAddress() })
    expectInvalid(t, onPublic, 'wrong secret on a public route')

    await app.sql`update api_keys set expires_at = now() - interval '1 second' where id = ${key.id}`
    expectInvalid(t, await use(key.key), 'expired')
    await app.sql`update api_keys set expires_at = now() + interval '1 day' where id = ${key.id}`
    t.equal((await use(key.key)).statusCode, 200, 'live again')

    const del = await user.inject({ method: 'DELETE', url: `/api/auth/api-keys/${key.id}` })
    t.equal(del.statusCode, 204)
    expectInvalid(t, await use(key.key), 'revoked at once')
    t.same((await user.inject('/api/auth/api-keys')).json(), { items: [] }, 'the list hides revoked keys')
    expectProblem(t, await user.inject({ method: 'DELETE', url: `/api/auth/api-keys/${key.id}` }), 404)

    const reasons = (await refusedFor(app, key.id)).map((r) => r.detail.reason)
    t.ok(
      reasons.includes('wrong_secret') && reasons.includes('expired') && reasons.includes('revoked'),
      reasons.join(),
    )
    t.ok((await refusedFor(app, '0000000000000000')).some((r) => r.detail.reason === 'unknown'))
    const [revoked] = await auditEvents(app, 'auth.api_key.revoked', user.id)
    t.match(revoked?.detail, { keyId: key.id, reason: 'revoked_by_user' })
  },
)

t.test(
  'a key never reaches auth routes nor PUT /api/users/me/*: never 2xx, 403 api-key-not-allowed',
  async (t) => {
    const app = await buildApp(t)
    const user: SignedInUser = await signUp(app, 'keya')
    const key = await createApiKey(user, ['comments:read', 'comments:write', 'profile:read'])
    // Every operation the OpenAPI document lists under /api/auth/ and every PUT under /api/users/me/.
    const doc = JSON.parse(readFileSync(new URL('../../../openapi.json', import.meta.url), 'utf8')) as {
      paths: Record<string, Record<string, unknown>>
    }
    const targets: [string, string][] = []
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const method of Object.keys(operations)) {
        const auth = path.startsWith('/api/auth/')
        const me = path.startsWith('/api/users/me/') && method === 'put'
        if (auth || me) targets.push([method.toUpperCase(), path.replace(/\{[^}]+\}/g, key.id)])
      }
    }
    t.ok(targets.length >= 20, `${targets.length} routes`)
    t.ok(
      targets.some(([m, p]) => m === 'POST' && p === '/api/auth/api-keys'),
      'key management is among them',
    )
    for (const [method, url] of targets) {
      const payload = method === 'GET' || method === 'DELETE' ? {} : { payload: {} }
      const res = await injectWithKey(
        app,
        key.key,
      )({
        method: method as 'GET',
        url,
        remoteAddress: anyAddress(),
        ...payload,
      })
      expectProblem(t, res, 403, NOT_ALLOWED, `${method} ${url}`)
    }
    t.equal((await injectWithKey(app, key.key)('/api/auth/api-keys')).statusCode, 403)
    t.equal(
      (await user.inject('/api/auth/api-keys')).json<{ items: unknown[] }>().items.length,
      1,
      'still there',
    )
    const refused = await refusedFor(app, key.id)
    t.ok(
      refused.filter((r) => r.detail.reason === 'route_not_allowed').length >= targets.length,
      'each one audited',
    )
  },
)

t.test(
  'a flood of bad keys from one address writes at most AUDIT_REFUSALS_MAX audit rows a minute',
  async (t) => {
    const app = await buildApp(t)
    const user = await signUp(app, 'keyf')
    const key = await createApiKey(user, ['comments:read'])
    const remoteAddress = anyAddress()
    const forged = `bwk_${key.id}_${'a'.repeat(64)}`
    for (let i = 0; i < AUDIT_REFUSALS_MAX + 5; i++) {
      t.equal((await injectWithKey(app, forged)({ url: '/api/comments', remoteAddress })).statusCode, 401)
    }
    const rows = await refusedFor(app, key.id)
    t.equal(rows.length, AUDIT_REFUSALS_MAX, `the rest reach the log only (${rows.length} rows)`)
    t.equal((await injectWithKey(app, key.key)({ url: '/api/comments', remoteAddress })).statusCode, 200)
  },
)
