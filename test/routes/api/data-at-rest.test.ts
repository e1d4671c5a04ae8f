import postgres from 'postgres'
import t from 'tap'
import {
  build,
  expectProblem,
  logCapture,
  signUp,
  TEST_JWT_SECRET,
  TEST_PASSWORD,
  testDatabaseUrl,
  uniqueName,
} from '../../helper.js'

/** What someone with a copy of the database files or a backup sees: every table, as COPY writes it. */
async function dump(): Promise<string> {
  const admin = postgres(await testDatabaseUrl(), { max: 1, onnotice: () => {} })
  let out = ''
  try {
    for (const table of ['users', 'sessions', 'refresh_tokens', 'audit_events', 'comments']) {
      const stream = await admin`copy ${admin(table)} to stdout`.readable()
      for await (const chunk of stream) out += chunk.toString()
    }
  } finally {
    await admin.end()
  }
  return out
}

const AGENT = 'SecretAgent/7.1 (dump-probe)'
const ADDRESS = '203.0.113.77'

t.test('a dump of the database holds no plaintext email, address or user agent of our users', async (t) => {
  const app = await build(t)
  const username = uniqueName('dump')
  const email = `${username}.Victim@Example.com`
  const from = { remoteAddress: ADDRESS, headers: { 'user-agent': AGENT } }
  const reg = await app.inject({
    method: 'POST',
    url: '/api/auth/register',
    payload: { username, email, password: TEST_PASSWORD },
    ...from,
  })
  t.equal(reg.statusCode, 201)
  const bad = await app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { username: email.toUpperCase(), password: 'wrong-password' },
    ...from,
  })
  t.equal(bad.statusCode, 401, 'a failure is audited with the address too')
  const ok = await app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { username: email.toUpperCase(), password: TEST_PASSWORD },
    ...from,
  })
  t.equal(ok.statusCode, 200, 'login by email (any case) goes through the blind index')

  const text = await dump()
  t.ok(text.includes('enc:v1:'), 'the dump holds ciphertext')
  t.notOk(text.toLowerCase().includes(email.toLowerCase()), 'no plaintext email')
  t.notOk(text.includes(ADDRESS), 'no plaintext client address')
  t.notOk(text.includes('SecretAgent'), 'no plaintext user agent')

  const token = ok.json().accessToken as string
  const me = await app.inject({ url: '/api/users/me', headers: { authorization: `Bearer ${token}` } })
  t.equal(me.json().user.email, email.toLowerCase(), 'the owner still reads their email')
  const sessions = await app.inject({
    url: '/api/auth/sessions',
    headers: { authorization: `Bearer ${token}` },
  })
  t.match(sessions.json().items[0], { ip: ADDRESS, userAgent: AGENT }, 'and their sessions')
})

t.test(
  'the admin search matches a username prefix or a whole email, no longer an email prefix',
  async (t) => {
    const app = await build(t)
    const admin = await signUp(app, 'srchadm', { role: 'admin' })
    const user = await signUp(app, 'findme')
    const search = async (q: string) =>
      (await admin.inject(`/api/admin/users?q=${encodeURIComponent(q)}`))
        .json()
        .items.map((u: { id: string }) => u.id)
    t.ok((await search(user.username.slice(0, 6))).includes(user.id), 'username prefix')
    t.ok((await search(`${user.username}@EXAMPLE.com`)).includes(user.id), 'exact email, any case')
    t.notOk((await search(`${user.username}@exam`)).includes(user.id), 'an email prefix finds nothing')
  },
)

t.test('a ciphertext copied into another row does not decrypt: generic 500, logged, no data', async (t) => {
  const logs = logCapture()
  const app = await build(t, {
    env: { NODE_ENV: 'production', JWT_SECRET: TEST_JWT_SECRET },
    logStream: logs.stream,
  })
  const victim = await signUp(app, 'victim')
  const attacker = await signUp(app, 'mover')
  const admin = postgres(await testDatabaseUrl(), { max: 1, onnotice: () => {} })
  t.teardown(() => admin.end())
  // Someone with write access to the table moves the victim's encrypted email onto their own row.
  await admin`update users set email = (select email from users where id = ${victim.id}) where id = ${attacker.id}`
  const res = await attacker.inject('/api/users/me')
  const body = expectProblem(t, res, 500)
  t.equal(body.detail, 'An unexpected error occurred.')
  t.notOk(res.body.includes('victim'), 'nothing of the moved value leaks')
  t.ok(
    logs.lines.some((l) => l.event === 'data.decrypt_failed'),
    'the failure is logged as a decryption failure',
  )
  t.equal((await victim.inject('/api/users/me')).statusCode, 200, 'the victim is unaffected')
})
