import t from 'tap'
import type { App } from '../../../app.js'
import { AUDIT_REFUSALS_MAX } from '../../../plugins/app/security-audit.js'
import { attemptLogin, build, type InjectResponse, signUp, TEST_PASSWORD } from '../../helper.js'

/** Regression (review 5): refusals that tell of an attack reach audit_events, with a bound per source. */

interface Row {
  event: string
  userId: string | null
  detail: Record<string, unknown>
}

/** The audit rows written for exactly this response (by its request id). */
async function auditOf(app: App, res: InjectResponse): Promise<Row[]> {
  const id = String(res.headers['x-request-id'])
  return app.sql<
    Row[]
  >`select event, user_id, detail from audit_events where request_id = ${id} order by created_at`
}

t.test('a throttled sign-in is audited, the correct password refused included', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4', LOGIN_ACCOUNT_MAX_FAILURES: '2' } })
  const user = await signUp(app, 'throttled')
  for (let i = 0; i < 2; i++) await attemptLogin(app, user.username, 'Wrong-Password-Guess')
  const refused = await attemptLogin(app, user.username, TEST_PASSWORD)
  t.equal(refused.statusCode, 429)
  const rows = await auditOf(app, refused)
  t.same(
    rows.map((r) => [r.event, r.detail.route]),
    [['auth.throttled', '/api/auth/login']],
  )
})

t.test('a CSRF rejection and admin denials are audited', async (t) => {
  const app = await build(t)
  const user = await signUp(app, 'denied')
  const csrf = await app.inject({
    method: 'POST',
    url: '/api/comments',
    cookies: { access_token: user.accessToken },
    headers: { origin: 'https://evil.example' },
    payload: { body: 'x' },
  })
  t.equal(csrf.statusCode, 403)
  t.same(
    (await auditOf(app, csrf)).map((r) => [r.event, r.detail.path]),
    [['security.csrf_rejected', '/api/comments']],
  )
  const asUser = await user.inject('/api/admin/users')
  t.equal(asUser.statusCode, 403)
  t.same(
    (await auditOf(app, asUser)).map((r) => [r.event, r.userId, r.detail.type]),
    [['admin.access_denied', user.id, 'forbidden']],
  )
  const anonymous = await app.inject('/API/admin//audit-events')
  t.equal(anonymous.statusCode, 401)
  t.same(
    (await auditOf(app, anonymous)).map((r) => [r.event, r.userId, r.detail.path]),
    [['admin.access_denied', null, '/api/admin/audit-events']],
    'every spelling, by its normalized path',
  )
})

t.test('a flood of refusals writes a bounded number of rows per source', async (t) => {
  const app = await build(t)
  const probe = (remoteAddress: string) => app.inject({ url: '/api/admin/users', remoteAddress })
  const flood: InjectResponse[] = []
  for (let i = 0; i < AUDIT_REFUSALS_MAX + 15; i++) flood.push(await probe('198.51.100.77'))
  const written = await Promise.all(flood.map((res) => auditOf(app, res)))
  t.equal(written.filter((rows) => rows.length === 1).length, AUDIT_REFUSALS_MAX, 'the first ten')
  t.equal((await auditOf(app, await probe('198.51.100.78'))).length, 1, 'another source still gets its rows')
})

t.test(
  'regression (second review): anonymous noise cannot hide a signed-in probe of the admin API',
  async (t) => {
    const app = await build(t)
    const user = await signUp(app, 'prober', { remoteAddress: '198.51.100.90' })
    for (let i = 0; i < AUDIT_REFUSALS_MAX + 2; i++) {
      await app.inject({ url: '/api/admin/users', remoteAddress: '198.51.100.90' })
    }
    const probe = await user.inject({ url: '/api/admin/users', remoteAddress: '198.51.100.90' })
    t.equal(probe.statusCode, 403)
    t.same(
      (await auditOf(app, probe)).map((r) => [r.event, r.userId]),
      [['admin.access_denied', user.id]],
    )
  },
)

t.test('admin reads of the user list and of the audit log are audited with their filters', async (t) => {
  const app = await build(t)
  const admin = await signUp(app, 'reader', { role: 'admin' })
  const list = await admin.inject('/api/admin/users?q=someone&limit=5')
  t.equal(list.statusCode, 200)
  t.same(
    (await auditOf(app, list)).map((r) => [r.event, r.userId, r.detail.q, r.detail.limit]),
    [['admin.users.listed', admin.id, 'someone', '5']],
  )
  const log = await admin.inject('/api/admin/audit-events?event=auth.login.success&limit=3')
  t.equal(log.statusCode, 200)
  t.same(
    (await auditOf(app, log)).map((r) => [r.event, r.userId, r.detail.event]),
    [['admin.audit.read', admin.id, 'auth.login.success']],
  )
})
