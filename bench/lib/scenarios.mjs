// What npm run bench measures: scenarios (in the order a round runs them, each next to its
// baseline), the process each one loads, and the ratios and targets computed within a round.

const COMMENT = JSON.stringify({ body: 'comment <b>x</b>' })
const JSON_HEADERS = { 'content-type': 'application/json' }
/** bcrypt-bound scenarios: as many in flight as the service's thread pool and cores can hash. */
export const BCRYPT_CONNECTIONS = 8
/** The low-rate /health/live probe that runs while login floods. */
const PROBE = { connections: 2, overallRate: 20 }

/**
 * target: the process kind a scenario loads (one fresh process per kind per round).
 * needs: the scenarios its ratios are computed against, added when a subset asks for it.
 * job(ctx): the autocannon job (JSON; bench/lib/load-child.mjs runs it).
 */
export const SCENARIOS = [
  {
    id: 'node-http',
    label: 'bare node:http JSON',
    target: 'node-http',
    job: (c) => get(c, 'node-http', '/'),
  },
  {
    id: 'live',
    label: 'service GET /health/live',
    target: 'service',
    needs: ['node-http'],
    job: (c) => get(c, 'service', '/health/live'),
  },
  {
    id: 'fastify',
    label: 'bare Fastify JSON',
    target: 'fastify',
    needs: ['node-http'],
    job: (c) => get(c, 'fastify', '/'),
  },
  {
    id: 'me-twin',
    label: 'raw twin: session check joined with the user row (node:http + postgres.js)',
    target: 'twin',
    job: (c) => get(c, 'twin', '/me'),
  },
  {
    id: 'me',
    label: 'service GET /api/users/me (Bearer)',
    target: 'service',
    needs: ['me-twin'],
    job: (c) => get(c, 'service', '/api/users/me', { authorization: `Bearer ${c.auth.accessToken}` }),
  },
  {
    id: 'me-cookie',
    label: 'service GET /api/users/me (access cookie)',
    target: 'service',
    needs: ['me-twin'],
    job: (c) => get(c, 'service', '/api/users/me', { cookie: c.auth.cookie }),
  },
  {
    id: 'me-api-key',
    label: 'service GET /api/users/me (API key, profile:read)',
    target: 'service',
    needs: ['me-twin', 'me'],
    job: (c) => get(c, 'service', '/api/users/me', { authorization: `Bearer ${c.auth.apiKey}` }),
  },
  {
    id: 'express',
    label: 'Express recipe GET /api/protected (jwt.verify, string secret)',
    target: 'express',
    needs: ['me'],
    job: (c) =>
      get(c, 'express', '/api/protected', { authorization: `Bearer ${c.targets.express.info.token}` }),
  },
  {
    id: 'express-keyobject',
    label: 'Express recipe, secret as a KeyObject',
    target: 'express-keyobject',
    needs: ['me'],
    job: (c) =>
      get(c, 'express-keyobject', '/api/protected', {
        authorization: `Bearer ${c.targets['express-keyobject'].info.token}`,
      }),
  },
  {
    id: 'better-auth',
    label: 'Fastify + better-auth GET /api/auth/get-session',
    target: 'better-auth',
    needs: ['me'],
    job: (c) =>
      get(c, 'better-auth', '/api/auth/get-session', { cookie: c.targets['better-auth'].info.cookie }),
  },
  {
    id: 'comment-create-twin',
    label: 'raw twin: comment insert',
    target: 'twin',
    job: (c) => post(c, 'twin', '/comments', COMMENT),
  },
  {
    id: 'comment-create',
    label: 'service POST /api/comments (Bearer)',
    target: 'service',
    needs: ['comment-create-twin'],
    job: (c) =>
      post(c, 'service', '/api/comments', COMMENT, { authorization: `Bearer ${c.auth.accessToken}` }),
  },
  {
    id: 'comment-list-twin',
    label: 'raw twin: comment list select (21 rows)',
    target: 'twin',
    job: (c) => get(c, 'twin', '/comments?limit=20'),
  },
  {
    id: 'comment-list',
    label: 'service GET /api/comments?limit=20',
    target: 'service',
    needs: ['comment-list-twin'],
    job: (c) => get(c, 'service', '/api/comments?limit=20'),
  },
  {
    id: 'refresh',
    label: 'service POST /api/auth/refresh (cookie rotation per connection)',
    target: 'service',
    // Needs one sign-in per connection (jars), made by run.mjs before the round.
    job: (c) => ({
      url: c.targets.service.url,
      path: '/api/auth/refresh',
      method: 'POST',
      mode: 'cookie-chain',
      jars: c.jars,
      connections: c.jars.length,
      // A browser's same-origin fetch: the CSRF check (plugins/app/csrf.ts) passes on these.
      headers: { origin: c.targets.service.url, 'sec-fetch-site': 'same-origin' },
    }),
  },
  {
    id: 'bcrypt',
    label: `raw bcrypt.compare, ${BCRYPT_CONNECTIONS} in flight`,
    target: 'bcrypt',
    // Not HTTP: bench/peers/bcrypt-rate.mjs measures itself.
  },
  {
    id: 'login',
    label: `service POST /api/auth/login (bcrypt cost 10, -c ${BCRYPT_CONNECTIONS})`,
    target: 'service',
    needs: ['bcrypt'],
    job: (c) => ({
      ...post(
        c,
        'service',
        '/api/auth/login',
        JSON.stringify({ username: c.auth.username, password: c.auth.password }),
      ),
      connections: BCRYPT_CONNECTIONS,
    }),
    // Runs beside the login flood; its latency is the point.
    probe: (c) => ({ ...get(c, 'service', '/health/live'), ...PROBE, id: 'live-probe' }),
  },
]

function get(c, target, path, headers = {}) {
  return { url: `${c.targets[target].url}${path}`, method: 'GET', headers, connections: c.connections }
}

function post(c, target, path, body, headers = {}) {
  return {
    url: `${c.targets[target].url}${path}`,
    method: 'POST',
    headers: { ...JSON_HEADERS, ...headers },
    body,
    connections: c.connections,
  }
}

/** The asked scenarios (all when none) with the ones their ratios need, in catalogue order. */
export function withBaselines(asked) {
  const chosen = new Set(asked.length > 0 ? asked : SCENARIOS.map((s) => s.id))
  for (const id of [...chosen]) {
    for (const need of SCENARIOS.find((s) => s.id === id)?.needs ?? []) chosen.add(need)
  }
  return SCENARIOS.filter((s) => chosen.has(s.id))
}

const MiB = 1024 * 1024

/**
 * Ratios, each computed within one round from two scenarios measured in it, then the median over
 * rounds. `min`/`max` is the target (goals: a miss is reported, it does not fail the run).
 */
export const RATIOS = [
  { id: 'me/twin', label: '`/me` req/s ÷ raw twin req/s', a: 'me', b: 'me-twin', of: 'rps', min: 0.75 },
  {
    id: 'me-cookie/twin',
    label: '`/me` (cookie) req/s ÷ raw twin req/s',
    a: 'me-cookie',
    b: 'me-twin',
    of: 'rps',
  },
  {
    id: 'me-api-key/me',
    label: '`/me` (API key) req/s ÷ `/me` (Bearer JWT) req/s',
    a: 'me-api-key',
    b: 'me',
    of: 'rps',
    min: 0.85,
  },
  {
    id: 'comment-create/twin',
    label: 'POST comments req/s ÷ raw twin req/s',
    a: 'comment-create',
    b: 'comment-create-twin',
    of: 'rps',
    min: 0.85,
  },
  {
    id: 'comment-list/twin',
    label: 'GET comments req/s ÷ raw twin req/s',
    a: 'comment-list',
    b: 'comment-list-twin',
    of: 'rps',
    min: 0.85,
  },
  {
    id: 'login/bcrypt',
    label: 'login req/s ÷ raw bcrypt compares/s',
    a: 'login',
    b: 'bcrypt',
    of: 'rps',
    min: 0.95,
  },
  {
    id: 'live/node-http cpu',
    label: '`/health/live` CPU/req ÷ node:http CPU/req',
    a: 'live',
    b: 'node-http',
    of: 'cpuPerReq',
    max: 1.7,
  },
  {
    id: 'fastify/node-http cpu',
    label: 'bare Fastify CPU/req ÷ node:http CPU/req',
    a: 'fastify',
    b: 'node-http',
    of: 'cpuPerReq',
  },
  {
    id: 'me/better-auth',
    label: '`/me` req/s ÷ better-auth get-session req/s',
    a: 'me',
    b: 'better-auth',
    of: 'rps',
    min: 5,
  },
  { id: 'me/express', label: '`/me` req/s ÷ Express recipe req/s', a: 'me', b: 'express', of: 'rps', min: 5 },
  {
    id: 'me/express-keyobject',
    label: '`/me` req/s ÷ Express recipe (KeyObject) req/s',
    a: 'me',
    b: 'express-keyobject',
    of: 'rps',
    min: 2,
  },
]

/** Absolute targets, read from one round's records. */
export const LIMITS = [
  {
    id: 'live-during-login p99',
    label: '`/health/live` p99 while login floods (ms)',
    needs: ['login'],
    value: (round) => round.login?.probe?.p99 ?? null,
    max: 50,
    unit: 'ms',
  },
  {
    id: 'service peak RSS',
    label: 'service peak RSS over the round (MiB)',
    needs: [],
    value: (round) => {
      const peaks = Object.values(round)
        .filter((r) => r.target === 'service' && r.peakRss)
        .map((r) => r.peakRss)
      return peaks.length > 0 ? Math.max(...peaks) / MiB : null
    },
    compare: (round) => (round.fastify?.peakRss ? round.fastify.peakRss / MiB : null),
    compareLabel: 'bare Fastify',
    max: 130,
    unit: 'MiB',
  },
]
