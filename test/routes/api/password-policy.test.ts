// The password policy from the attacker's side: length in code points after NFKC, the blocklist,
// context words, no composition rules, no truncation (NIST SP 800-63B-4 §3.1.1.2, ASVS 5.0 6.2).
import t, { type Test } from 'tap'
import type { App } from '../../../app.js'
import {
  attemptLogin,
  attemptRegister,
  build,
  expectProblem,
  login,
  register,
  signUp,
  TEST_PASSWORD,
  uniqueName,
} from '../../helper.js'

const VALIDATION_ERROR = 'urn:bulwark:problem:validation-error'

/** 100 different emoji: 100 code points, 200 UTF-16 units, 400 UTF-8 bytes. */
const EMOJI = Array.from({ length: 100 }, (_, i) => String.fromCodePoint(0x1f300 + i)).join('')

/** Registers and expects a 400 naming `messages` on body.password (and nothing written). */
async function refused(
  t: Test,
  app: App,
  password: string,
  messages: string[],
  who: { username?: string; email?: string } = {},
) {
  const username = who.username ?? uniqueName('p')
  const res = await attemptRegister(app, username, password, who.email ? { email: who.email } : {})
  const problem = expectProblem(t, res, 400, VALIDATION_ERROR, messages.join(', '))
  t.same(
    problem.errors?.map((e) => `${e.path} ${e.message}`).sort(),
    messages.map((m) => `body.password ${m}`).sort(),
    `refused: ${messages.join(', ')}`,
  )
  const [row] = await app.sql`select count(*)::int as n from users where username = ${username}`
  t.equal(row?.n, 0, 'no row written')
}

async function accepted(t: Test, app: App, password: string, label: string) {
  const username = uniqueName('p')
  const res = await attemptRegister(app, username, password)
  t.equal(res.statusCode, 201, `${label}: registered (${res.body.slice(0, 120)})`)
  t.equal((await attemptLogin(app, username, password)).statusCode, 200, `${label}: signs in`)
  return username
}

t.test('a 100-emoji password is whole: a change in its last character fails (no 72-byte cut)', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  t.equal([...EMOJI].length, 100)
  t.equal(Buffer.byteLength(EMOJI), 400)
  const username = await accepted(t, app, EMOJI, '100 emoji')
  const last = [...EMOJI]
  last[99] = '\u{1F680}'
  t.equal((await attemptLogin(app, username, last.join(''))).statusCode, 401, 'the last emoji changed')
  t.equal(
    (await attemptLogin(app, username, [...EMOJI].slice(0, 18).join(''))).statusCode,
    401,
    'first 72 bytes',
  )
})

t.test('no composition rules: a passphrase of words, lower case and spaces, is a password', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  await accepted(t, app, 'correct horse battery staple', 'passphrase')
  await accepted(t, app, 'zebra ocean violin tulip', 'no digit, no upper case, no symbol')
  await accepted(t, app, 'Tidy\u0000Lantern-Orbit-47', 'a NUL inside')
  const nul = await register(app, uniqueName('nul'), 'Tidy\u0000Lantern-Orbit-47')
  t.equal((await attemptLogin(app, nul.username, 'Tidy')).statusCode, 401, 'not cut at the NUL')
})

t.test(
  'length is counted in code points after NFKC: 14 refused and 15 accepted at the default',
  async (t) => {
    const app = await build(t, { env: { BCRYPT_COST: '4' } })
    await refused(t, app, 'Tidy-Lantern-4', ['must be at least 15 characters'])
    await accepted(t, app, 'Tidy-Lantern-47', '15 characters')
    // 14 emoji are 28 UTF-16 units but 14 characters.
    await refused(t, app, EMOJI.slice(0, 28), ['must be at least 15 characters'])
    await accepted(t, app, [...EMOJI].slice(20, 35).join(''), '15 emoji')
    // 14 visible letters typed decomposed (28 code points as sent) are 14 after NFKC.
    await refused(t, app, 'éèêëéèêëéèêëéè'.normalize('NFD'), ['must be at least 15 characters'])
    // 5 "ﬃ" ligatures are 5 code points as sent and 15 ("ffi" × 5) after NFKC.
    await accepted(t, app, 'ﬃ ﬃ ﬃ ﬃ ﬃ', 'ligatures expand')
  },
)

t.test('long passwords: 129 and 256 characters are accepted, 257 refused', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const words = 'lantern orbit meadow harbor brisk tidy zebra violin '.repeat(6)
  await accepted(t, app, words.slice(0, 129), '129 characters')
  await accepted(t, app, words.slice(0, 256), '256 characters')
  await refused(t, app, words.slice(0, 257), ['must be at most 256 characters'])
  // Sign-in takes any normalization form of an allowed password, even when it is longer as sent.
  const username = await accepted(t, app, 'éàèù'.repeat(64), '256 composed')
  t.equal((await attemptLogin(app, username, 'éàèù'.repeat(64).normalize('NFD'))).statusCode, 200, '512 sent')
})

t.test('common and breached passwords are refused, whatever their case', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  await refused(t, app, 'Password1', ['must be at least 15 characters', 'is too common'])
  await refused(t, app, 'Passw0rd', ['must be at least 15 characters', 'is too common'])
  await refused(t, app, 'passwordpassword', ['is too common'])
  await refused(t, app, 'PassWordPassWord', ['is too common'])
  await refused(t, app, 'ｐａｓｓｗｏｒｄｐａｓｓｗｏｒｄ', ['is too common'])
  const eight = await build(t, { env: { BCRYPT_COST: '4', PASSWORD_MIN_LENGTH: '8' } })
  await refused(t, eight, 'Password1', ['is too common'])
  await refused(t, eight, 'Passw0rd', ['is too common'])
  await accepted(t, eight, 'Zq8-vLmw', 'eight characters when the operator says 8')
})

t.test('context words: the username, the email name and the service name, each named', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const username = uniqueName('ctx')
  const email = 'someone.else@example.com'
  await refused(t, app, `my-${username.toUpperCase()}-pass`, ['contains your username'], { username, email })
  await refused(t, app, 'sunny-marguerite-77', ['contains the first part of your email address'], {
    email: 'Marguerite@example.com',
  })
  // The test kit's email is <username>@example.com: both rules are named at once.
  await refused(
    t,
    app,
    `${username}-again`,
    ['contains your username', 'contains the first part of your email address'],
    {
      username,
    },
  )
  await refused(t, app, 'my-BULWARK-account-9', ['contains the name of this service'])
  // A context word shorter than 4 characters is not looked for: "bob" is in too many passwords.
  t.equal(
    (
      await attemptRegister(app, `bob${Date.now() % 1000}`, 'bobcat-lantern-orbit', {
        email: 'bob@example.com',
      })
    ).statusCode,
    201,
  )
})

t.test('a password change follows the same rules, named on newPassword', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const user = await signUp(app, 'chg')
  const change = (newPassword: string) =>
    user.inject({
      method: 'PUT',
      url: '/api/users/me/password',
      payload: { currentPassword: TEST_PASSWORD, newPassword },
    })
  const cases: [string, string[]][] = [
    ['Zq8-vLmw', ['must be at least 15 characters']],
    ['passwordpassword', ['is too common']],
    [`${user.username}-again`, ['contains your username', 'contains the first part of your email address']],
  ]
  for (const [password, messages] of cases) {
    const problem = expectProblem(t, await change(password), 400, VALIDATION_ERROR, messages.join(', '))
    t.same(
      problem.errors,
      messages.map((message) => ({ path: 'body.newPassword', message })),
    )
  }
  t.equal((await change('correct horse battery staple')).statusCode, 204)
  t.equal((await attemptLogin(app, user.username, 'correct horse battery staple')).statusCode, 200)
})

t.test('rules apply when a password is set: a stricter minimum does not lock anyone out', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  const { username } = await register(app, uniqueName('old'), 'Tidy-Lantern-47')
  const stricter = await build(t, { env: { BCRYPT_COST: '4', PASSWORD_MIN_LENGTH: '20' } })
  await login(stricter, username, 'Tidy-Lantern-47')
  t.pass('a 15-character password signs in under a 20-character minimum')
  await refused(t, stricter, 'Tidy-Lantern-Orbit', ['must be at least 20 characters'])
})

t.test('malformed passwords are a 400 naming the field, never a 500', async (t) => {
  const app = await build(t, { env: { BCRYPT_COST: '4' } })
  await refused(t, app, 'Tidy-Lantern-Orbit-\uD800', ['must be valid Unicode text'])
  for (const password of [null, 42, ['Tidy-Lantern-Orbit-47'], 'x'.repeat(1025)]) {
    const res = await app.inject({
      method: 'POST',
      url: '/api/auth/register',
      payload: { username: uniqueName('bad'), email: 'bad@example.com', password },
    })
    const problem = expectProblem(t, res, 400, VALIDATION_ERROR, JSON.stringify(password).slice(0, 20))
    t.match(problem.errors, [{ path: 'body.password', message: /string of at most 256 characters/ }])
  }
  const login = await attemptLogin(app, 'someone', 'x'.repeat(1025))
  t.equal(login.statusCode, 400, 'sign-in bounds the input too')
  const { username } = await register(app, uniqueName('lone'))
  t.equal(
    (await attemptLogin(app, username, 'Tidy-\uDC00')).statusCode,
    401,
    'a lone surrogate at sign-in is a 401',
  )
})

t.test('the OpenAPI document states the rules with the configured minimum', async (t) => {
  const app = await build(t, { env: { PASSWORD_MIN_LENGTH: '20' } })
  const doc = (await app.inject('/docs/json')).json()
  const register = doc.paths['/api/auth/register'].post.requestBody.content['application/json'].schema
  t.match(
    register.properties.password.description,
    /^At least 20 and at most 256 characters, counted as Unicode code points after NFKC/,
  )
  t.match(
    register.properties.password.description,
    /common or breached password.*username.*email.*name of this service/,
  )
  const change = doc.paths['/api/users/me/password'].put.requestBody.content['application/json'].schema
  t.match(change.properties.newPassword.description, /^At least 20 /)
  t.equal(change.properties.currentPassword.description, undefined, 'the current password has no rules')
})
