import postgres from 'postgres'
import t, { type Test } from 'tap'
import { createAudit } from '../../services/audit.js'
import { build, signUp, testDatabaseUrl } from '../helper.js'

/** Makes every audit insert of `event` fail, as a full disk or a broken constraint would. */
async function breakAudit(t: Test, event: string) {
  const admin = postgres(await testDatabaseUrl(), { max: 1, onnotice: () => {} })
  t.teardown(async () => {
    await admin`drop trigger if exists refuse_audit on audit_events`
    await admin.end()
  })
  await admin.unsafe(`
    create or replace function refuse_audit() returns trigger language plpgsql as $$
    begin
      if new.event = '${event}' then raise exception 'audit store failed'; end if;
      return new;
    end $$;
    drop trigger if exists refuse_audit on audit_events;
    create trigger refuse_audit before insert on audit_events for each row execute function refuse_audit();
  `)
}

t.test('a change whose audit row cannot be written does not happen: logout-all', async (t) => {
  const app = await build(t)
  const user = await signUp(app, 'atomic')
  await breakAudit(t, 'auth.logout_all')
  const res = await user.inject({ method: 'POST', url: '/api/auth/logout-all' })
  t.equal(res.statusCode, 500)
  t.equal((await user.inject('/api/users/me')).statusCode, 200, 'the sessions were not revoked either')
})

t.test('a change whose audit row cannot be written does not happen: an admin demotion', async (t) => {
  const app = await build(t)
  const admin = await signUp(app, 'atomadm', { role: 'admin' })
  const other = await signUp(app, 'atomoth', { role: 'admin' })
  await breakAudit(t, 'admin.user.role_changed')
  const res = await admin.inject({
    method: 'PATCH',
    url: `/api/admin/users/${other.id}`,
    payload: { role: 'user' },
  })
  t.equal(res.statusCode, 500)
  const [row] = await app.sql<{ role: string }[]>`select role from users where id = ${other.id}`
  t.equal(row?.role, 'admin', 'the role did not change without its audit row')
  t.equal((await other.inject('/api/users/me')).statusCode, 200, "and the target's sessions live on")
})

t.test(
  "a change whose audit row cannot be written does not happen: an admin deletes another's comment",
  async (t) => {
    const app = await build(t)
    const admin = await signUp(app, 'atomdel', { role: 'admin' })
    const author = await signUp(app, 'atomaut')
    const created = await author.inject({
      method: 'POST',
      url: '/api/comments',
      payload: { body: 'keep me' },
    })
    const id = created.json<{ id: string }>().id
    await breakAudit(t, 'comment.deleted_by_admin')
    const res = await admin.inject({ method: 'DELETE', url: `/api/comments/${id}` })
    t.equal(res.statusCode, 500)
    t.equal(
      (await app.inject(`/api/comments/${id}`)).statusCode,
      200,
      'the comment was not deleted unaudited',
    )
  },
)

t.test('an audit observer that throws fails neither the audit nor its transaction', async (t) => {
  const app = await build(t)
  const logged: unknown[] = []
  const log = Object.assign(Object.create(app.log), { warn: (entry: unknown) => logged.push(entry) })
  const ctx = { ip: null, userAgent: null, requestId: 'observer-test' }
  const audit = createAudit(app.sql, app.cipher, log, ctx, () => {
    throw new Error('metrics broke')
  })
  const result = await app.sql.begin(async (tx) => {
    await audit('test.observer_failed', null, {}, tx)
    return 'committed'
  })
  t.equal(result, 'committed')
  const [row] = await app.sql<{ n: number }[]>`
    select count(*)::int as n from audit_events where event = 'test.observer_failed'`
  t.equal(row?.n, 1, 'the row is written and kept')
  t.match(logged, [{ event: 'audit.observer_failed', auditEvent: 'test.observer_failed' }])
})
