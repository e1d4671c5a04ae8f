import { createHash } from 'node:crypto'
import type { Sql } from 'postgres'
import t from 'tap'
import { isProblem } from '../../lib/errors.js'
import type { SessionPrincipal } from '../../repositories/sessions.js'
import { createKeyUsage } from '../../services/api-key-usage.js'
import { createApiKey, parseApiKey } from '../../services/api-keys.js'

/** The API key services without HTTP: rules the routes shadow, and the usage tracker's failure paths. */

/** A postgres.js stand-in: every statement answers `rows`, or fails. */
function fakeSql(answer: () => Promise<unknown[]>) {
  const statements: string[] = []
  const sql = ((strings: TemplateStringsArray) => {
    statements.push(strings.join('?'))
    return answer()
  }) as unknown as Sql
  return { sql, statements }
}

t.test('createApiKey refuses the admin scope to a non-admin before touching the database', async (t) => {
  const { sql, statements } = fakeSql(async () => [])
  const principal = {
    userId: 'u',
    role: 'user',
    via: 'session',
    sessionId: 's',
    amr: ['pwd'],
  } as SessionPrincipal
  const ctx = { sql, config: { API_KEYS_MAX_PER_USER: 20 }, audit: async () => {} } as never
  const error = await createApiKey(ctx, principal, { name: 'x', scopes: ['admin'] }).catch((e: unknown) => e)
  t.ok(isProblem(error, 'forbidden'), '403 forbidden')
  t.same(statements, [], 'no statement ran')
})

t.test('parseApiKey: one anchored shape', async (t) => {
  const id = '0123456789abcdef'
  const secret = 'ab'.repeat(32)
  const hash = createHash('sha256').update(secret).digest()
  t.same(parseApiKey(`bwk_${id}_${secret}`), { id, secret, hash }, 'the id, the secret and its SHA-256')
  for (const bad of [
    `bwk_${id}_${secret}\n`,
    ` bwk_${id}_${secret}`,
    `bwk_${id}_${secret}x`,
    `xbwk_${id}_${secret}`,
  ]) {
    t.equal(parseApiKey(bad), null, JSON.stringify(bad.slice(-3)))
  }
})

t.test('a failed flush keeps the uses for the next one; a newer use noted meanwhile wins', async (t) => {
  const usage = createKeyUsage()
  usage.used('k1', 1000)
  usage.used('k1', 500) // never backwards
  usage.used('k2', 2000)
  let release: (rows: unknown[]) => void = () => {}
  let fail: (e: Error) => void = () => {}
  const pending = new Promise<unknown[]>((resolve, reject) => {
    release = resolve
    fail = reject
  })
  const { sql } = fakeSql(() => pending)
  const flushing = usage.flush(sql)
  t.equal(usage.pending(), 0, 'taken for the statement')
  usage.used('k2', 3000)
  fail(new Error('database away'))
  await t.rejects(flushing, /database away/)
  t.equal(usage.pending(), 2, 'both keys noted again')
  const seen: unknown[][] = []
  const { sql: ok } = fakeSql(async () => [{ id: 'k1' }, { id: 'k2' }])
  const capture = ((strings: TemplateStringsArray, ...values: unknown[]) => {
    seen.push(values)
    return (ok as unknown as (s: TemplateStringsArray) => Promise<unknown[]>)(strings)
  }) as unknown as Sql
  t.equal(await usage.flush(capture), 2, 'one statement, two rows')
  const [ids, times] = (seen[0] ?? []) as [string[], number[]]
  const written = Object.fromEntries(ids.map((id, n) => [id, times[n]]))
  t.same(written, { k1: 1, k2: 3 }, 'k1 at its latest use, k2 at the newer one (seconds)')
  release([])
  t.equal(await usage.flush(capture), 0, 'nothing left: no statement')
  t.equal(seen.length, 1)
})

t.test('the seen-address cache is bounded: the oldest pair is asked again', async (t) => {
  const usage = createKeyUsage(2)
  const { sql, statements } = fakeSql(async () => [{ keyId: 'k' }])
  const address = (n: number) => Buffer.from([n])
  t.equal(await usage.firstFromAddress(sql, 'k', address(1)), true)
  t.equal(await usage.firstFromAddress(sql, 'k', address(1)), false, 'cached: no statement')
  t.equal(statements.length, 1)
  await usage.firstFromAddress(sql, 'k', address(2))
  await usage.firstFromAddress(sql, 'k', address(3)) // forgets address 1
  await usage.firstFromAddress(sql, 'k', address(1))
  t.equal(statements.length, 4, 'the forgotten pair is asked again (the database keeps it unique)')
})
