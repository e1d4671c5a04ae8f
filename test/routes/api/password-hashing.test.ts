// How passwords are stored and checked: the pepper, the scheme marker, legacy upgrade, no truncation.
import { createHash, randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import bcrypt from 'bcrypt'
import t from 'tap'
import type { App } from '../../../app.js'
import { revokeSessions } from '../../../repositories/sessions.js'
import { insertUser, replacePasswordHash } from '../../../repositories/users.js'
import { hashPassword, needsRehash, SCHEME, verifyPassword } from '../../../services/passwords.js'
import {
  attemptLogin,
  attemptRegister,
  bearer,
  build,
  login,
  register,
  TEST_DATA_KEYS,
  testConfig,
  uniqueName,
} from '../../helper.js'

/** A password that the rules of earlier releases accepted (8+ characters, a digit, an upper-case letter). */
const LEGACY_PASSWORD = 'Passw0rdX'

const storedHash = async (app: App, username: string): Promise<string> => {
  const [row] = await app.sql<{ passwordHash: string }[]>`
    select password_hash from users where username = ${username}`
  return row?.passwordHash ?? ''
}

/** A user row exactly as earlier releases wrote it: bcrypt over the raw password. */
async function insertLegacyUser(app: App, password: string, cost = 4): Promise<string> {
  const username = uniqueName('legacy')
  await insertUser(app.sql, app.cipher, {
    id: randomUUID(),
    username,
    email: `${username}@example.com`,
    passwordHash: await bcrypt.hash(password, cost),
    role: 'user',
  })
  return username
}

t.test(
  'the stored hash names its scheme and is bcrypt over the peppered digest, at BCRYPT_COST',
  async (t) => {
    const app = await build(t, { env: { BCRYPT_COST: '5' } })
    const { username } = await register(app, uniqueName('hash'), 'Tr0ubadour-Horse-Staple')
    const stored = await storedHash(app, username)
    t.ok(stored.startsWith(SCHEME), `starts with ${SCHEME}`)
    const inner = stored.slice(SCHEME.length)
    t.equal(bcrypt.getRounds(inner), 5)
    t.notOk(await bcrypt.compare('Tr0ubadour-Horse-Staple', inner), 'not bcrypt of the password itself')
    const sha = createHash('sha384').update('Tr0ubadour-Horse-Staple').digest('base64')
    t.notOk(await bcrypt.compare(sha, inner), 'nor of an unkeyed digest (no shucking without the pepper)')
  },
)

t.test('a password hashed under one pepper does not verify under another', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const { username } = await register(app, uniqueName('pepper'), 'Tr0ubadour-Horse-Staple')
  t.equal((await attemptLogin(app, username, 'Tr0ubadour-Horse-Staple')).statusCode, 200)
  const other = await build(t, {
    env: { BCRYPT_COST: '4', PASSWORD_PEPPER: Buffer.alloc(32, 9).toString('base64') },
  })
  t.equal((await attemptLogin(other, username, 'Tr0ubadour-Horse-Staple')).statusCode, 401)
})

t.test('a legacy plain-bcrypt user signs in, and the hash is upgraded in the same request', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const username = await insertLegacyUser(app, LEGACY_PASSWORD)
  t.match(await storedHash(app, username), /^\$2b\$04\$/, 'as the old code stored it')
  t.equal((await attemptLogin(app, username, 'Passw0rdY')).statusCode, 401, 'a wrong password is still 401')
  t.match(await storedHash(app, username), /^\$2b\$/, 'and a failed sign-in changes nothing')

  // Its password is shorter than today's rules allow: rules apply when a password is set, not at sign-in.
  t.equal((await attemptLogin(app, username, LEGACY_PASSWORD)).statusCode, 200)
  const upgraded = await storedHash(app, username)
  t.ok(upgraded.startsWith(SCHEME), 'upgraded to the peppered scheme')
  t.equal(bcrypt.getRounds(upgraded.slice(SCHEME.length)), 4)
  t.equal((await attemptLogin(app, username, LEGACY_PASSWORD)).statusCode, 200, 'and signs in again')
  t.equal(await storedHash(app, username), upgraded, 'no second rehash')
  t.equal((await attemptLogin(app, username, 'Passw0rdY')).statusCode, 401)
})

t.test('a legacy hash still refuses what the old code refused: more than 72 bytes', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const first72 = `P1${'x'.repeat(70)}`
  const username = await insertLegacyUser(app, first72)
  t.equal((await attemptLogin(app, username, `${first72}tail`)).statusCode, 401, 'no truncated match')
  t.match(await storedHash(app, username), /^\$2b\$/, 'not upgraded')
  t.equal((await attemptLogin(app, username, first72)).statusCode, 200)
})

t.test('a legacy user who typed NFD signs in with NFD, and after the upgrade with NFC too', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const nfd = 'Cafe\u0301-Zu\u0308rich-9'
  const username = await insertLegacyUser(app, nfd)
  t.equal((await attemptLogin(app, username, nfd.normalize('NFC'))).statusCode, 401, 'the old hash is of NFD')
  t.equal((await attemptLogin(app, username, nfd)).statusCode, 200)
  t.equal((await attemptLogin(app, username, nfd.normalize('NFC'))).statusCode, 200, 'one visible password')
})

t.test('a hash under another cost is upgraded at the next sign-in', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '5' } })
  const { username } = await register(app, uniqueName('cost'), 'Tr0ubadour-Horse-Staple')
  const config = await testConfig({ BCRYPT_COST: '4' })
  const cheap = await hashPassword('Tr0ubadour-Horse-Staple', config)
  await app.sql`update users set password_hash = ${cheap} where username = ${username}`
  t.equal((await attemptLogin(app, username, 'Tr0ubadour-Horse-Staple')).statusCode, 200)
  t.equal(bcrypt.getRounds((await storedHash(app, username)).slice(SCHEME.length)), 5)
})

t.test('regression: a sign-in rehash never undoes a password change that committed first', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const username = await insertLegacyUser(app, LEGACY_PASSWORD)
  const legacy = await storedHash(app, username)
  const s = await login(app, username, LEGACY_PASSWORD) // upgrades
  const change = await app.inject({
    method: 'PUT',
    url: '/api/users/me/password',
    headers: bearer(s.accessToken),
    payload: { currentPassword: LEGACY_PASSWORD, newPassword: 'Sturdy-Lantern-Orbit-2' },
  })
  t.equal(change.statusCode, 204)
  const changed = await storedHash(app, username)
  // A sign-in that verified the legacy hash before the change now tries to write its rehash.
  const [row] = await app.sql<{ id: string }[]>`select id from users where username = ${username}`
  const late = await hashPassword(LEGACY_PASSWORD, await testConfig({ BCRYPT_COST: '4' }))
  t.equal(
    await replacePasswordHash(app.sql, row?.id ?? '', legacy, late),
    false,
    'the stale rehash is refused',
  )
  t.equal(await storedHash(app, username), changed)
  t.equal((await attemptLogin(app, username, LEGACY_PASSWORD)).statusCode, 401, 'the old password stays dead')
  t.equal((await attemptLogin(app, username, 'Sturdy-Lantern-Orbit-2')).statusCode, 200)
})

t.test(
  'unknown user, legacy user and current user each cost one bcrypt compare at BCRYPT_COST',
  async (t) => {
    const config = await testConfig({ BCRYPT_COST: '5' })
    const calls: { data: string; rounds: number }[] = []
    const compare = bcrypt.compare
    const spy = (data: string | Buffer, hash: string) => {
      calls.push({ data: String(data), rounds: bcrypt.getRounds(hash) })
      return compare(data, hash)
    }
    bcrypt.compare = spy as typeof bcrypt.compare
    t.teardown(() => {
      bcrypt.compare = compare
    })
    const current = await hashPassword('Tr0ubadour-Horse-Staple', config)
    const legacy = await bcrypt.hash(LEGACY_PASSWORD, 5)
    for (const [label, stored, password] of [
      ['unknown user', undefined, 'Tr0ubadour-Horse-Staple'],
      ['unreadable hash', '$argon2id$v=19$m=65536', 'Tr0ubadour-Horse-Staple'],
      ['legacy user', legacy, LEGACY_PASSWORD],
      ['current user', current, 'Tr0ubadour-Horse-Staple'],
    ] as const) {
      calls.length = 0
      const ok = await verifyPassword(password, stored, config)
      t.equal(ok, label === 'legacy user' || label === 'current user', `${label}: verified ${ok}`)
      t.same(
        calls.map((c) => c.rounds),
        [5],
        `${label}: one compare at cost 5`,
      )
    }
    t.equal(needsRehash(current, 5), false)
    t.equal(needsRehash(legacy, 5), true, 'a legacy hash is always rehashed')
    t.equal(needsRehash(current, 6), true)
    t.equal(TEST_DATA_KEYS.PASSWORD_PEPPER, config.PASSWORD_PEPPER, 'the test kit supplies its own pepper')
  },
)

t.test('registration and sign-in normalize the same way (NFC and NFD are one password)', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const nfc = 'Crème-Brûlée-Façade-7'.normalize('NFC')
  const nfd = nfc.normalize('NFD')
  t.not(nfc, nfd)
  const a = uniqueName('nfc')
  t.equal((await attemptRegister(app, a, nfc)).statusCode, 201)
  t.equal((await attemptLogin(app, a, nfd)).statusCode, 200, 'registered NFC, signed in NFD')
  const b = uniqueName('nfd')
  t.equal((await attemptRegister(app, b, nfd)).statusCode, 201)
  t.equal((await attemptLogin(app, b, nfc)).statusCode, 200, 'registered NFD, signed in NFC')
  // NFKC also folds compatibility forms: a full-width letter is its ASCII twin.
  t.equal((await attemptLogin(app, b, nfc.replace('C', '\uFF23'))).statusCode, 200, 'full-width Ｃ')
})

t.test(
  'regression: a sign-in racing a committed password change gets no session for the old password',
  async (t) => {
    const app = await build(t, { env: { BCRYPT_COST: '4' } })
    const username = uniqueName('race')
    const id = randomUUID()
    const OLD = 'Passw0rdX' // a legacy account: plain bcrypt, upgraded at its next sign-in
    const NEW = 'Brisk-Harbor-Meadow-58'
    await insertUser(app.sql, app.cipher, {
      id,
      username,
      email: `${username}@example.com`,
      passwordHash: await bcrypt.hash(OLD, 4),
      role: 'user',
    })
    const newHash = await hashPassword(NEW, app.config)
    let release!: () => void
    let updated = false
    // What a password change commits: the new hash, and every session revoked.
    const change = app.sql.begin(async (tx) => {
      await tx`update users set password_hash = ${newHash} where id = ${id}`
      await revokeSessions(tx, { userId: id }, 'password_changed')
      updated = true
      await new Promise<void>((r) => {
        release = r
      })
    })
    while (!updated) await sleep(5)
    // The sign-in has read the old hash and verified OLD; its writes now wait on the change's row lock.
    const signIn = attemptLogin(app, username, OLD)
    for (let i = 0; i < 400; i++) {
      const [row] = await app.sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock'`
      if ((row?.n ?? 0) > 0) break
      await sleep(10)
    }
    release()
    await change
    const res = await signIn
    t.equal(res.statusCode, 401, 'the old password yields no session once the change committed')
    const [sessions] = await app.sql<{ n: number }[]>`
    select count(*)::int as n from sessions where user_id = ${id} and revoked_at is null`
    t.equal(sessions?.n, 0, 'no live session for the account')
    t.equal((await attemptLogin(app, username, NEW)).statusCode, 200, 'the new password works')
  },
)
