import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { build, createApiKey, expectProblem, injectWithKey, logCapture, signUp } from '../../helper.js'

/** Hostile review of API keys (issue 16): each test is named after the defect it proved. */

const INVALID_TOKEN = 'urn:bulwark:problem:invalid-token'
const anyAddress = () => `10.${Array.from(randomBytes(3)).join('.')}`
const buildApp = (t: Test, env: Record<string, string> = {}) =>
  build(t, { env: { BCRYPT_COST: '4', ...env } })

t.test(
  'a revoked, expired or disabled key loses its own rate-limit budget: its sender’s address pays',
  async (t) => {
    const app = await buildApp(t, { RATE_LIMIT_MAX: '3', API_KEY_RATE_LIMIT_MAX: '1000' })
    const user = await signUp(app, 'rlk', { remoteAddress: anyAddress() })
    for (const ending of ['revoked', 'expired', 'disabled'] as const) {
      const key = await createApiKey(user, ['profile:read'])
      const remoteAddress = anyAddress()
      const use = () => injectWithKey(app, key.key)({ url: '/api/users/me', remoteAddress })
      t.equal((await use()).statusCode, 200, 'the first use is counted by address (not verified yet)')
      const live = await use()
      t.equal(live.statusCode, 200)
      t.equal(live.headers['ratelimit-limit'], '1000', 'a live key counts against its own budget')
      if (ending === 'revoked') await app.sql`update api_keys set revoked_at = now() where id = ${key.id}`
      if (ending === 'expired') await app.sql`update api_keys set expires_at = now() where id = ${key.id}`
      if (ending === 'disabled') await app.sql`update users set disabled = true where id = ${user.id}`
      // A dead key must not keep a budget apart from its sender's address (else minting, using and
      // revoking keys gives an attacker as many budgets as they like). Its first refusal forgets it.
      const statuses: number[] = []
      for (let i = 0; i < 5; i++) statuses.push((await use()).statusCode)
      t.same(statuses, [401, 401, 401, 429, 429], `${ending}: then the address budget (3, one spent) applies`)
      if (ending === 'disabled') await app.sql`update users set disabled = false where id = ${user.id}`
    }
  },
)

t.test(
  'a key sent with other whitespace after Bearer is still a key: refused off its routes, never 2xx',
  async (t) => {
    const app = await buildApp(t)
    const user = await signUp(app, 'kws')
    const key = await createApiKey(user, ['profile:read'])
    for (const authorization of [`Bearer  ${key.key}`, `Bearer\t${key.key}`, `bearer   ${key.key}`]) {
      const label = JSON.stringify(authorization.slice(0, 12))
      for (const url of ['/api/auth/logout', '/api/users/me']) {
        const res = await app.inject({
          method: url.endsWith('logout') ? 'POST' : 'GET',
          url,
          headers: { authorization },
          remoteAddress: anyAddress(),
        })
        expectProblem(t, res, 401, INVALID_TOKEN, `${label} ${url}: a malformed key`)
      }
    }
  },
)

t.test(
  'new-address audit counts an IPv6 client by its /64: rotating inside it writes no row per request',
  async (t) => {
    const app = await buildApp(t)
    const user = await signUp(app, 'kv6')
    const key = await createApiKey(user, ['profile:read'])
    for (let i = 1; i <= 5; i++) {
      const res = await injectWithKey(
        app,
        key.key,
      )({ url: '/api/users/me', remoteAddress: `2001:db8:7:9::${i}` })
      t.equal(res.statusCode, 200)
    }
    await injectWithKey(app, key.key)({ url: '/api/users/me', remoteAddress: '2001:db8:7:a::1' })
    const [stored] = await app.sql<
      { n: number }[]
    >`select count(*)::int as n from api_key_addresses where key_id = ${key.id}`
    t.equal(stored?.n, 2, 'one row per /64')
    const [audited] = await app.sql<{ n: number }[]>`
    select count(*)::int as n from audit_events where event = 'auth.api_key.new_address' and user_id = ${user.id}`
    t.equal(audited?.n, 2, 'one audit row per /64')
  },
)

t.test(
  'an admin’s key without the admin scope has a user’s rights only (no moderation, no emails)',
  async (t) => {
    const app = await buildApp(t)
    const admin = await signUp(app, 'kam', { role: 'admin' })
    const victim = await signUp(app, 'kvi')
    const comment = await victim.inject({ method: 'POST', url: '/api/comments', payload: { body: 'mine' } })
    const id = comment.json<{ id: string }>().id
    const write = await createApiKey(admin, ['comments:write', 'profile:read'])
    const del = await injectWithKey(app, write.key)({ method: 'DELETE', url: `/api/comments/${id}` })
    expectProblem(t, del, 403, undefined, 'comments:write is not moderation')
    t.equal((await app.inject(`/api/comments/${id}`)).statusCode, 200, 'the comment stays')
    const profile = await injectWithKey(app, write.key)(`/api/users/${victim.username}`)
    t.equal(profile.statusCode, 200)
    t.notOk('email' in profile.json(), 'profile:read does not read other users’ email')
    // With the admin scope the owner's admin rights apply (read fresh at each use).
    const full = await createApiKey(admin, ['admin', 'comments:write'])
    t.equal(
      (await injectWithKey(app, full.key)({ method: 'DELETE', url: `/api/comments/${id}` })).statusCode,
      204,
    )
  },
)

/** [method, path] of every route, read from the router's own tree (printRoutes): none is missed. */
function routesOf(tree: string): [string, string][] {
  const routes: [string, string][] = []
  const parents: { column: number; path: string }[] = []
  for (const line of tree.split('\n')) {
    const match = /^([│ ├└─]*)(\S+) \(([^)]+)\)/.exec(line)
    if (!match) continue
    const [, indent = '', segment = '', methods = ''] = match
    while ((parents.at(-1)?.column ?? -1) >= indent.length) parents.pop()
    const path = (parents.at(-1)?.path ?? '') + segment
    parents.push({ column: indent.length, path })
    for (const method of methods.split(', ')) routes.push([method, path])
  }
  return routes
}

t.test('an all-scope admin key walks every route: 2xx only where a route declares a scope', async (t) => {
  const app = await buildApp(t)
  const admin = await signUp(app, 'kwalk', { role: 'admin' })
  const key = await createApiKey(admin, ['comments:read', 'comments:write', 'profile:read', 'admin'])
  const comment = await admin.inject({ method: 'POST', url: '/api/comments', payload: { body: 'walk' } })
  const commentId = comment.json<{ id: string }>().id
  const declared = new Set(
    ['GET /api/comments', 'GET /api/comments/:id', 'PATCH /api/comments/:id', 'DELETE /api/comments/:id']
      .concat(['GET /api/users/me', 'GET /api/users/:username', 'GET /api/admin/users'])
      .concat(['GET /api/admin/audit-events', 'PATCH /api/admin/users/:id', 'POST /api/comments']),
  )
  const routes = routesOf(app.printRoutes({ commonPrefix: false }))
  t.ok(routes.length >= 60, `${routes.length} routes`)
  t.ok(
    routes.some(([m, p]) => m === 'POST' && p === '/api/auth/passkeys/login/options'),
    'passkeys walked',
  )
  for (const [method, path] of routes) {
    const id = path.startsWith('/api/comments') ? commentId : path.includes('admin') ? admin.id : key.id
    const url = path.replace(':username', admin.username).replace(':id', id).replace('*', 'x')
    const body = method === 'GET' || method === 'HEAD' ? {} : { payload: {} }
    const res = await injectWithKey(
      app,
      key.key,
    )({ method: method as 'GET', url, remoteAddress: anyAddress(), ...body })
    if (declared.has(`${method === 'HEAD' ? 'GET' : method} ${path}`)) continue
    t.ok(res.statusCode >= 400, `${method} ${path}: ${res.statusCode}`)
  }
  // Spellings of the admin API that match no route never take a key (admin-guard): 401.
  for (const url of ['/API/admin/users', '//api/admin/users', '/api//admin/users', '/api/admin/Users']) {
    t.equal((await injectWithKey(app, key.key)({ url, remoteAddress: anyAddress() })).statusCode, 401, url)
  }
})

t.test(
  'a route that declares a scope but needs a session still refuses a key (requireSession, step-up)',
  async (t) => {
    const app = await build(t, {
      env: { BCRYPT_COST: '4' },
      setup: (app) => {
        const config = { apiKeyScope: 'profile:read' as const }
        app.get('/test-only/session', { config, onRequest: [app.authenticate] }, async (request) => ({
          userId: request.requireSession().userId,
        }))
        app.get(
          '/test-only/step-up',
          { config, onRequest: [app.authenticate, app.requireRecentAuth] },
          async () => ({}),
        )
      },
    })
    const user = await signUp(app, 'kdid')
    const key = await createApiKey(user, ['profile:read'])
    for (const url of ['/test-only/session', '/test-only/step-up']) {
      t.equal((await user.inject(url)).statusCode, 200, `${url}: a session passes`)
      const res = await injectWithKey(app, key.key)({ url, remoteAddress: anyAddress() })
      expectProblem(
        t,
        res,
        403,
        'urn:bulwark:problem:api-key-not-allowed',
        `${url}: a key never counts as a session`,
      )
    }
  },
)

t.test('no key secret in any log line: refusals, a 500 on a key route, headers logged as such', async (t) => {
  const log = logCapture()
  const app = await build(t, {
    env: { BCRYPT_COST: '4' },
    logStream: log.stream,
    setup: (app) => {
      app.get('/test-only/key-boom', { config: { apiKeyScope: 'profile:read' } }, async (request) => {
        request.log.info(
          { headers: request.headers, authorization: request.headers.authorization },
          'headers',
        )
        throw new Error('boom')
      })
    },
  })
  const user = await signUp(app, 'klog')
  const key = await createApiKey(user, ['profile:read'])
  const secret = key.key.slice(-64)
  const send = (url: string, token = key.key, method: 'GET' | 'POST' = 'GET') =>
    injectWithKey(app, token)({ method, url, remoteAddress: anyAddress() })
  t.equal((await send('/test-only/key-boom')).statusCode, 500)
  await send('/api/comments') // insufficient scope
  await send('/api/auth/logout', key.key, 'POST') // route takes no key
  await send('/api/users/me', `${key.key}x`) // malformed
  await send('/api/users/me', `bwk_${key.id}_${secret.replace(/^./, (c) => (c === 'a' ? 'b' : 'a'))}`)
  t.ok(log.raw.length > 0, `${log.raw.length} lines`)
  t.notOk(
    log.raw.some((line) => line.includes(secret) || line.includes(secret.slice(1))),
    'the secret is in no line',
  )
})

t.test(
  'MFA_REQUIRED_ROLES=admin: an admin session without a second factor makes no key of any scope',
  async (t) => {
    const app = await buildApp(t, { MFA_REQUIRED_ROLES: 'admin' })
    const admin = await signUp(app, 'knomfa', { role: 'admin' })
    // That session may post no comment itself; a key it made must not do it for it.
    const payload = { name: 'bot', scopes: ['comments:write'] }
    const res = await admin.inject({ method: 'POST', url: '/api/auth/api-keys', payload })
    expectProblem(t, res, 403, 'urn:bulwark:problem:mfa-required')
    const user = await signUp(app, 'kmfau')
    t.equal((await createApiKey(user, ['comments:write'])).scopes.length, 1, 'a user’s role is not listed')
  },
)
