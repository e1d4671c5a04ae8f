import t, { type Test } from 'tap'
import {
  attemptLogin,
  build,
  enrolTotp,
  expectProblem,
  OTHER_PASSWORD,
  signUp,
  TEST_PASSWORD,
  totpCode,
  verifyMfa,
} from '../../helper.js'

/**
 * The lockout cannot be turned against the owner (OWASP device cookies): an attacker guessing from
 * many addresses locks out unknown clients, never a browser the owner signed in from before. And
 * every other check of the password (change, step-up) or of a code spends the same budgets.
 */

const RATE_LIMITED = 'urn:bulwark:problem:rate-limited'
const LIMITS = {
  BCRYPT_COST: '4',
  LOGIN_RATE_LIMIT_MAX: '3',
  LOGIN_ACCOUNT_MAX_FAILURES: '5',
  LOGIN_DEVICE_MAX_FAILURES: '3',
  RATE_LIMIT_MAX: '1000',
}

type App = Awaited<ReturnType<typeof build>>
const loginFrom = (app: App, address: string, username: string, password: string, device?: string) =>
  app.inject({
    method: 'POST',
    url: '/api/auth/login',
    remoteAddress: address,
    payload: { username, password },
    ...(device ? { cookies: { device } } : {}),
  })

/** An attacker with many addresses spends the account's whole budget on wrong guesses. */
async function lockOut(t: Test, app: App, username: string) {
  for (let i = 0; i < 6; i++) {
    const res = await loginFrom(app, `198.51.100.${i + 1}`, username, `Wrong-Guess-Number-${i}`)
    t.ok([401, 429].includes(res.statusCode), `guess ${i + 1} is refused`)
  }
}

t.test(
  'the lockout attack: guesses from many addresses lock out strangers, not the owner’s browser',
  async (t) => {
    const app = await build(t, { env: LIMITS })
    const owner = await signUp(app, 'owner', { remoteAddress: '192.0.2.10' })
    const device = owner.cookies.device ?? ''
    t.match(
      device,
      new RegExp(`^${owner.id}\\.[A-Za-z0-9_-]{22}\\.[0-9a-z]+\\.[A-Za-z0-9_-]{43}$`),
      'sign-in set a device cookie',
    )

    await lockOut(t, app, owner.username)
    const stranger = await loginFrom(app, '192.0.2.20', owner.username, TEST_PASSWORD)
    expectProblem(t, stranger, 429, RATE_LIMITED, 'the right password from an unknown client waits')

    const trusted = await loginFrom(app, '192.0.2.10', owner.username, TEST_PASSWORD, device)
    t.equal(trusted.statusCode, 200, 'the owner signs in from the browser they used before')
    const renewed = trusted.cookies.find((c) => c.name === 'device')?.value ?? ''
    t.equal(
      renewed.split('.')[1],
      device.split('.')[1],
      'the renewed cookie keeps the device (and its budget)',
    )

    // The attacker cannot borrow that budget: a forged cookie, or their own account's cookie, is no device of the owner.
    const tampered = `${device.slice(0, -2)}${device.endsWith('AA') ? 'BB' : 'AA'}`
    expectProblem(
      t,
      await loginFrom(app, '192.0.2.21', owner.username, TEST_PASSWORD, tampered),
      429,
      RATE_LIMITED,
    )
    const attacker = await signUp(app, 'attacker', { remoteAddress: '192.0.2.30' })
    const foreign = attacker.cookies.device ?? ''
    expectProblem(
      t,
      await loginFrom(app, '192.0.2.22', owner.username, TEST_PASSWORD, foreign),
      429,
      RATE_LIMITED,
    )
    const moved = `${owner.id}${foreign.slice(foreign.indexOf('.'))}`
    expectProblem(
      t,
      await loginFrom(app, '192.0.2.23', owner.username, TEST_PASSWORD, moved),
      429,
      RATE_LIMITED,
      'a cookie re-addressed to the owner',
    )
  },
)

t.test('a trusted device has its own failure budget, and the account’s stays untouched by it', async (t) => {
  const app = await build(t, { env: LIMITS })
  const owner = await signUp(app, 'ownbudget', { remoteAddress: '192.0.2.40' })
  const device = owner.cookies.device ?? ''
  for (let i = 0; i < 3; i++) {
    const res = await loginFrom(app, `192.0.2.${41 + i}`, owner.username, 'Wrong-Guess-Typo-1', device)
    t.equal(res.statusCode, 401)
  }
  const spent = await loginFrom(app, '192.0.2.45', owner.username, TEST_PASSWORD, device)
  expectProblem(t, spent, 429, RATE_LIMITED, 'the device used up its own budget')
  t.match(spent.json<{ detail: string }>().detail, /this device/)
  const other = await loginFrom(app, '192.0.2.46', owner.username, TEST_PASSWORD)
  t.equal(other.statusCode, 200, 'the account budget was not spent by the device')
})

t.test(
  'the device cookie: HttpOnly, SameSite=Strict, Path=/, long-lived, kept at sign-out; __Host- in secure mode',
  async (t) => {
    const app = await build(t, { env: { DEVICE_COOKIE_MAX_AGE_SECONDS: '86400' } })
    const user = await signUp(app, 'cookie')
    const res = await attemptLogin(app, user.username)
    const cookie = res.cookies.find((c) => c.name === 'device')
    t.match(cookie, { httpOnly: true, sameSite: 'Strict', path: '/', maxAge: 86400 })
    const out = await app.inject({
      method: 'POST',
      url: '/api/auth/logout',
      headers: user.headers,
      cookies: user.cookies,
    })
    t.equal(out.statusCode, 204)
    t.notOk(
      out.cookies.some((c) => c.name === 'device'),
      'sign-out does not forget the device',
    )

    const secure = await build(t, { env: { COOKIE_SECURE: 'true' } })
    const su = await signUp(secure, 'securecookie')
    const login = await attemptLogin(secure, su.username)
    t.match(
      login.cookies.find((c) => c.name === '__Host-device'),
      { secure: true, path: '/', httpOnly: true },
    )
  },
)

t.test(
  'PUT /api/users/me/password is no unthrottled oracle: wrong current passwords spend the account budget',
  async (t) => {
    const app = await build(t, { env: { ...LIMITS, LOGIN_RATE_LIMIT_MAX: '1000' } })
    const user = await signUp(app, 'oracle', { remoteAddress: '192.0.2.50' })
    const change = (current: string) =>
      user.inject({
        method: 'PUT',
        url: '/api/users/me/password',
        remoteAddress: '192.0.2.51',
        payload: { currentPassword: current, newPassword: OTHER_PASSWORD },
      })
    const codes: number[] = []
    for (let i = 0; i < 25; i++) codes.push((await change(`Wrong-Current-${i}-Guess`)).statusCode)
    t.same(codes.slice(0, 5), [403, 403, 403, 403, 403])
    t.ok(
      codes.slice(5).every((c) => c === 429),
      `then throttled (${codes.slice(5)})`,
    )
    expectProblem(t, await change(TEST_PASSWORD), 429, RATE_LIMITED, 'the right one waits too')
    expectProblem(
      t,
      await loginFrom(app, '192.0.2.52', user.username, TEST_PASSWORD),
      429,
      RATE_LIMITED,
      'the same budget as sign-in',
    )
  },
)

t.test('step-up re-authentication spends the budget too', async (t) => {
  const app = await build(t, { env: { ...LIMITS, LOGIN_RATE_LIMIT_MAX: '1000' } })
  const user = await signUp(app, 'reauth', { remoteAddress: '192.0.2.60' })
  const reauth = (password: string) =>
    user.inject({
      method: 'POST',
      url: '/api/auth/reauthenticate',
      remoteAddress: '192.0.2.61',
      payload: { password },
    })
  for (let i = 0; i < 5; i++) t.equal((await reauth(`Wrong-Reauth-${i}-Guess`)).statusCode, 403)
  expectProblem(t, await reauth(TEST_PASSWORD), 429, RATE_LIMITED)
})

t.test('two-factor codes spend the account budget across fresh mfaTokens', async (t) => {
  const app = await build(t, {
    env: { ...LIMITS, LOGIN_RATE_LIMIT_MAX: '1000', LOGIN_ACCOUNT_MAX_FAILURES: '4' },
  })
  const user = await signUp(app, 'codes', { remoteAddress: '192.0.2.70' })
  const { secret } = await enrolTotp(app, user)
  const right = totpCode(secret)
  const wrong = right === '123456' ? '654321' : '123456'
  let mfaToken = ''
  for (let i = 0; i < 2; i++) {
    const first = await loginFrom(app, `192.0.2.${80 + i}`, user.username, TEST_PASSWORD)
    mfaToken = first.json<{ mfaToken: string }>().mfaToken
    for (let j = 0; j < 2; j++) {
      const res = await verifyMfa(app, mfaToken, wrong, { remoteAddress: `192.0.2.${80 + i}` })
      expectProblem(
        t,
        res,
        401,
        'urn:bulwark:problem:invalid-mfa-code',
        `token ${i + 1}, wrong code ${j + 1}`,
      )
    }
  }
  expectProblem(
    t,
    await verifyMfa(app, mfaToken, right),
    429,
    RATE_LIMITED,
    'four wrong codes spent the budget',
  )
  expectProblem(
    t,
    await loginFrom(app, '192.0.2.90', user.username, TEST_PASSWORD),
    429,
    RATE_LIMITED,
    'a fresh token is no way around it',
  )
})

t.test('regression: device cookies stockpiled before a password change give no extra guesses', async (t) => {
  const app = await build(t, { env: { ...LIMITS, LOGIN_RATE_LIMIT_MAX: '10000' } })
  const owner = await signUp(app, 'stockpile', { remoteAddress: '192.0.2.100' })
  // Someone who once knew the password signed in five times and kept every cookie.
  const stash: string[] = []
  for (let i = 0; i < 5; i++) {
    const res = await loginFrom(app, `192.0.2.${101 + i}`, owner.username, TEST_PASSWORD)
    stash.push(res.cookies.find((c) => c.name === 'device')?.value ?? '')
  }
  const changed = await owner.inject({
    method: 'PUT',
    url: '/api/users/me/password',
    payload: { currentPassword: TEST_PASSWORD, newPassword: OTHER_PASSWORD },
  })
  t.equal(changed.statusCode, 204)
  let answered = 0
  let n = 0
  for (const device of [undefined, ...stash]) {
    for (let j = 0; j < 6; j++) {
      const res = await loginFrom(app, `203.0.113.${++n}`, owner.username, `Guess-Number-${n}-x`, device)
      if (res.statusCode === 401) answered++
    }
  }
  t.equal(answered, 5, 'the account budget, once: the old cookies are void under the new password')
})

t.test('regression: stockpiled device cookies do not multiply guesses at the second factor', async (t) => {
  const app = await build(t, { env: { ...LIMITS, LOGIN_RATE_LIMIT_MAX: '10000' } })
  const owner = await signUp(app, 'stockcode', { remoteAddress: '192.0.2.110' })
  const stash: string[] = []
  for (let i = 0; i < 5; i++) {
    const res = await loginFrom(app, `192.0.2.${111 + i}`, owner.username, TEST_PASSWORD)
    stash.push(res.cookies.find((c) => c.name === 'device')?.value ?? '')
  }
  const { secret } = await enrolTotp(app, owner)
  const right = totpCode(secret)
  const wrongs = ['000001', '000002', '000003'].filter((c) => c !== right)
  let answered = 0
  let n = 0
  for (const device of [undefined, ...stash]) {
    const first = await loginFrom(app, `203.0.113.${++n}`, owner.username, TEST_PASSWORD, device)
    if (first.statusCode !== 200) continue
    const { mfaToken } = first.json<{ mfaToken: string }>()
    for (const wrong of wrongs) {
      const res = await verifyMfa(app, mfaToken, wrong, device ? { cookies: { device } } : {})
      if (res.statusCode === 401) answered++
    }
  }
  t.equal(answered, 5, 'wrong codes answered: the account code budget, whatever the cookies')
})

t.test(
  'regression: a planted second device cookie (no __Host- prefix) cannot hide the owner’s',
  async (t) => {
    const app = await build(t, { env: LIMITS })
    const owner = await signUp(app, 'planted', { remoteAddress: '192.0.2.120' })
    const device = owner.cookies.device ?? ''
    await lockOut(t, app, owner.username)
    const res = await app.inject({
      method: 'POST',
      url: '/api/auth/login',
      remoteAddress: '192.0.2.121',
      headers: { cookie: `device=planted.by.a.sibling; device=${device}` },
      payload: { username: owner.username, password: TEST_PASSWORD },
    })
    t.equal(res.statusCode, 200)
  },
)
