import t from 'tap'
import { isSecretKey, scrubSecrets } from '../../lib/logger.js'
import { attemptLogin, build, logCapture, signUp } from '../helper.js'

const SECRET_VALUES = [
  'Sup3rSecretPass!',
  'eyJhbGciOiJIUzI1NiJ9.secret-token',
  'sid=cookie-secret',
  'db-pass-123',
]

t.test('x-request-id from a gateway: well-formed ids are kept, others replaced by a UUID', async (t) => {
  const app = await build(t, { env: { TRUST_PROXY: '127.0.0.1' } })
  const cases: [string | undefined, boolean][] = [
    ['gw-7f3a:01.abc_DEF', true],
    ['a'.repeat(128), true],
    ['a'.repeat(129), false],
    ['has space', false],
    ['<script>', false],
    ['line\nbreak', false],
    ['-leading-dash', false],
    ['', false],
    [undefined, false],
  ]
  for (const [given, kept] of cases) {
    const res = await app.inject({
      url: '/health/live',
      headers: given === undefined ? {} : { 'x-request-id': given.replace('\n', ' ') },
    })
    const id = res.headers['x-request-id'] as string
    if (kept) t.equal(id, given, `kept ${given?.slice(0, 20)}`)
    else
      t.match(
        id,
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
        `generated for ${given}`,
      )
  }
  const a = await app.inject('/health/live')
  const b = await app.inject('/health/live')
  t.not(a.headers['x-request-id'], b.headers['x-request-id'], 'each request gets its own id')
})

t.test('regression: a client that is not a trusted gateway cannot choose the request id', async (t) => {
  const capture = logCapture()
  const app = await build(t, { logStream: capture.stream, env: { TRUST_PROXY: '10.0.0.1' } })
  capture.lines.length = 0
  const forged = 'admin-login-7f3a'
  for (const remoteAddress of ['127.0.0.1', '10.0.0.2', '::ffff:10.0.0.3']) {
    const res = await app.inject({ url: '/health/live', remoteAddress, headers: { 'x-request-id': forged } })
    t.not(res.headers['x-request-id'], forged, `from ${remoteAddress}: not honoured`)
    t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  }
  const viaGateway = await app.inject({
    url: '/health/live',
    remoteAddress: '10.0.0.1',
    headers: { 'x-request-id': forged },
  })
  t.equal(viaGateway.headers['x-request-id'], forged, 'from the gateway: honoured')
  const lines = capture.lines.filter((l) => l.event === 'request')
  t.equal(lines.length, 4)
  t.same(
    lines.map((l) => [l.requestId === forged, l.untrustedRequestId ?? null]),
    [
      [false, forged],
      [false, forged],
      [false, forged],
      [true, null],
    ],
    'the client value is logged apart, as untrustedRequestId',
  )
  // Without TRUST_PROXY nobody is a gateway.
  const direct = await build(t)
  const res = await direct.inject({ url: '/health/live', headers: { 'x-request-id': forged } })
  t.not(res.headers['x-request-id'], forged)
})

t.test('one log line per request with method, route, status, duration and the request id', async (t) => {
  const capture = logCapture()
  const app = await build(t, { logStream: capture.stream, env: { TRUST_PROXY: '127.0.0.1' } })
  capture.lines.length = 0
  await app.inject({ url: '/health/live?token=abc', headers: { 'x-request-id': 'req-1' } })
  await app.inject({ url: '/missing', headers: { 'x-request-id': 'req-2' } })
  const requests = capture.lines.filter((l) => l.event === 'request')
  t.equal(requests.length, 2)
  t.match(requests[0], {
    requestId: 'req-1',
    method: 'GET',
    route: '/health/live',
    path: '/health/live',
    status: 200,
  })
  t.type(requests[0]?.durationMs, 'number')
  t.match(requests[1], { requestId: 'req-2', route: null, path: '/missing', status: 404 })
  t.equal(
    capture.lines.filter((l) => l.requestId === 'req-1').length,
    1,
    'nothing else is logged for a plain request',
  )
  t.notMatch(capture.raw.join('\n'), /token=abc/, 'query strings are not logged')
})

t.test('secrets never reach the log', async (t) => {
  const capture = logCapture()
  const app = await build(t, {
    logStream: capture.stream,
    setup: (app) => {
      app.post('/test/leak', async (request) => {
        const body = request.body as Record<string, unknown>
        request.log.info({ body, headers: request.headers, user: { password: body.password } }, 'test log')
        request.log.error(
          { err: Object.assign(new Error('boom'), { parameters: [body.password] }) },
          'db error',
        )
        throw Object.assign(new Error('query failed'), { parameters: [body.password], query: 'select $1' })
      })
    },
  })
  const res = await app.inject({
    method: 'POST',
    url: '/test/leak',
    headers: { authorization: `Bearer ${SECRET_VALUES[1]}`, cookie: SECRET_VALUES[2] },
    payload: { password: SECRET_VALUES[0], token: SECRET_VALUES[1], secret: SECRET_VALUES[3] },
  })
  t.equal(res.statusCode, 500)
  const all = capture.raw.join('\n')
  t.match(all, /test log/, 'the log lines were written')
  t.match(all, /\[Redacted\]/)
  for (const secret of SECRET_VALUES) t.notOk(all.includes(secret), `${secret.slice(0, 8)}… is redacted`)
})

t.test('redaction reaches any depth and letter case, and leaves the logged objects untouched', async (t) => {
  const capture = logCapture()
  const app = await build(t, { logStream: capture.stream })
  const deep = { a: { b: { c: { d: { Password: SECRET_VALUES[0], keep: 'visible' } } } } }
  const list = [{ TOKEN: SECRET_VALUES[1] }, 'plain']
  const error = Object.assign(new Error('wrapped'), { secret: SECRET_VALUES[3] })
  app.log.info(
    { deep, list, cause: error, headers: { Authorization: 'Bearer x', 'Set-Cookie': SECRET_VALUES[2] } },
    'deep',
  )
  // biome-ignore lint/suspicious/noExplicitAny: a parsed log line is walked by known paths
  const line = capture.lines.find((l) => l.msg === 'deep') as Record<string, any>
  t.equal(line.deep.a.b.c.d.Password, '[Redacted]')
  t.equal(line.deep.a.b.c.d.keep, 'visible', 'other fields stay')
  t.equal(line.list[0].TOKEN, '[Redacted]')
  t.equal(line.list[1], 'plain')
  t.equal(line.cause.secret, '[Redacted]')
  t.equal(line.cause.message, 'wrapped', 'an error keeps its message')
  t.equal(line.headers.Authorization, '[Redacted]')
  t.equal(line.headers['Set-Cookie'], '[Redacted]')
  t.equal(deep.a.b.c.d.Password, SECRET_VALUES[0], "the caller's object is not changed")
  t.equal(error.secret, SECRET_VALUES[3])
  for (const secret of SECRET_VALUES) t.notOk(capture.raw.join('\n').includes(secret))
})

/** A chain of `depth` objects `{ next: … }` ending in `leaf`. */
function nested(depth: number, leaf: Record<string, unknown>): Record<string, unknown> {
  let value = leaf
  for (let i = 0; i < depth; i++) value = { next: value }
  return value
}

/** Every family of secret names the scrubber claims, in the spellings code and headers use. */
const SECRET_NAMES = [
  ...['password', 'Password', 'PASSWORD', 'userPassword', 'new_password', 'passwordHash', 'passwd'],
  ...['secret', 'clientSecret', 'CLIENT_SECRET', 'JWT_SECRET', 'token', 'apiToken', 'refresh_token'],
  ...['mfaToken', 'authorization', 'Proxy-Authorization', 'cookie', 'Set-Cookie', 'apikey', 'apiKey'],
  ...['api_key', 'X-API-KEY', 'key', 'KEY', 'privateKey', 'JWT_PRIVATE_KEY', 'DATA_INDEX_KEY'],
  ...['DATA_ENCRYPTION_KEYS', 'signingKeys', 'encryption_key', 'credentials', 'PASSWORD_PEPPER'],
  ...['DATABASE_URL', 'database_migration_url', 'REDIS_URL', 'parameters'],
  // Regression (second review): the names of an auth service's own secrets, and postgres.js' args.
  ...['otp', 'otpCode', 'userOtp', 'OTP_VALUE', 'totp', 'totpSecret', 'mfaCode', 'mfa_code', 'code_otp'],
  ...['recoveryCodes', 'recovery_code', 'passphrase', 'bearer', 'bearerToken', 'jwt', 'idJwt', 'dsn'],
  ...[
    'connectionString',
    'connection_string',
    'signingkey',
    'hmackey',
    'encryptionkey',
    'otpauthUri',
    'args',
  ],
]

/** Names the service logs (every log call and audit detail) and near misses of the "key" rule. */
const HARMLESS_NAMES = [
  ...['event', 'audit', 'userId', 'ip', 'detail', 'sessionId', 'sessionsRevoked', 'role', 'reason'],
  ...['targetUserId', 'from', 'to', 'commentId', 'authorId', 'stage', 'amr', 'failures', 'left'],
  ...['failOpen', 'signal', 'delayMs', 'closeListenerFirst', 'err', 'type', 'message', 'stack'],
  ...['code', 'version', 'origin', 'site', 'superuser', 'ownsTables', 'applied', 'values', 'failed'],
  ...['entries', 'ms', 'context', 'timeoutMs', 'method', 'route', 'path', 'status', 'durationMs'],
  ...['requestId', 'query', 'kid', 'keyId', 'key_id', 'keyPrefix', 'RATE_LIMIT_KEY_PREFIX', 'monkey'],
  ...['hotkeys', 'keyboard', 'MONKEY', 'footprint', 'mfaRequired', 'expiresIn', 'returned', 'limit'],
]

t.test('issue 12 #14: every secret family, in any case, at any depth; harmless names stay', async (t) => {
  for (const name of SECRET_NAMES) {
    t.ok(isSecretKey(name), `${name} is a secret`)
    t.ok(isSecretKey(name), `${name} is a secret (cached)`)
    const clean = scrubSecrets(nested(12, { [name]: 'S3CRET', keep: 1 }))
    t.notOk(JSON.stringify(clean).includes('S3CRET'), `${name} redacted 12 levels deep`)
  }
  for (const name of HARMLESS_NAMES) {
    t.notOk(isSecretKey(name), `${name} is not a secret`)
    t.same(scrubSecrets({ [name]: 'v' }), { [name]: 'v' }, `${name} is logged as it is`)
  }
})

t.test('regression (second review): a URL object is logged without its credentials', async (t) => {
  const clean = scrubSecrets({
    db: new URL('postgres://app:hunter2@db.internal:5432/bulwark'),
    plain: new URL('https://example.com/x'),
  })
  const text = JSON.stringify(clean)
  t.notOk(text.includes('hunter2'), text)
  t.notOk(text.includes('app:'), 'nor the user name')
  t.match(text, /db\.internal:5432\/bulwark/, 'the rest of the address stays')
  t.match(text, /https:\/\/example\.com\/x/)
})

t.test('arrays, errors, cycles and very deep objects: scrubbed, never a crash', async (t) => {
  const arrays = scrubSecrets({ list: [[{ apiToken: 'a' }], 'plain', [{ ok: 1 }]] })
  t.same(arrays, { list: [[{ apiToken: '[Redacted]' }], 'plain', [{ ok: 1 }]] })
  const error = Object.assign(new Error('boom'), { clientSecret: 'c', code: 'E1' })
  const errors: { errors: unknown[] } = scrubSecrets({ errors: [error] })
  t.match(errors.errors[0], { clientSecret: '[Redacted]', code: 'E1', message: 'boom', type: 'Error' })
  t.equal(error.clientSecret, 'c', "the caller's error is not changed")

  const cyclic: Record<string, unknown> = { password: 'p', name: 'n' }
  cyclic.self = cyclic
  cyclic.list = [cyclic]
  t.same(scrubSecrets(cyclic), {
    password: '[Redacted]',
    name: 'n',
    self: '[Circular]',
    list: ['[Circular]'],
  })
  const shared = { userPassword: 'p' }
  t.same(
    scrubSecrets({ a: shared, b: shared }),
    { a: { userPassword: '[Redacted]' }, b: { userPassword: '[Redacted]' } },
    'a shared object is not a cycle',
  )

  const deep = nested(100_000, { password: 'DEEP-SECRET' })
  const out = JSON.stringify(scrubSecrets(deep))
  t.notOk(out.includes('DEEP-SECRET'), 'the bottom of a 100000-deep object is not logged')
  t.match(out, /\[Too deep\]/, 'it is replaced by a marker')
  t.same(scrubSecrets(nested(60, { n: 1 })), nested(60, { n: 1 }), 'a deep object within the limit is kept')
})

t.test("the app's logger redacts deep and pattern-named secrets on real lines", async (t) => {
  const capture = logCapture()
  const app = await build(t, { logStream: capture.stream })
  const cyclic: Record<string, unknown> = { apiToken: SECRET_VALUES[1] }
  cyclic.self = cyclic
  app.log.info(
    { deep: nested(10, { password: SECRET_VALUES[0] }), clientSecret: SECRET_VALUES[3], cyclic },
    'deep',
  )
  app.log.error({ err: Object.assign(new Error('x'), { userPassword: SECRET_VALUES[0] }) }, 'err')
  app.log.info({ chain: nested(5000, { 'x-api-key': SECRET_VALUES[2] }) }, 'very deep')
  const all = capture.raw.join('\n')
  t.ok(
    capture.lines.some((l) => l.msg === 'very deep'),
    'the very deep line was written',
  )
  for (const secret of SECRET_VALUES) t.notOk(all.includes(secret), `${secret.slice(0, 8)}… is redacted`)

  // The service's own lines for sign-up, sign-in and a failed sign-in lose nothing to redaction.
  capture.raw.length = 0
  capture.lines.length = 0
  const user = await signUp(app, 'logkeys')
  await attemptLogin(app, user.username, 'Wrong-Password-Entirely-1')
  const failure = capture.lines.find((l) => l.event === 'auth.login.failure')
  t.match(failure, { audit: true, userId: user.id, detail: { reason: 'bad_password' } })
  t.match(
    capture.lines.find((l) => l.event === 'auth.login.success'),
    { detail: { sessionId: String } },
  )
  t.notMatch(capture.raw.join('\n'), /\[Redacted\]/, 'no field the service logs is taken for a secret')
})
