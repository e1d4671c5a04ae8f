import t from 'tap'
import {
  attemptLogin,
  build,
  enrolTotp,
  expectProblem,
  injectAs,
  OTHER_PASSWORD,
  signUp,
  TEST_PASSWORD,
  tokenClaims,
  totpCode,
  verifyMfa,
} from '../../helper.js'

/** Two-factor sign-in from the attacker's side: tokens, codes, replays, recovery codes (RFC 6238; ASVS 6.5). */

const P = 'urn:bulwark:problem:'

t.test(
  'enrolment: secret, otpauth URI and QR code, confirmed by a code; the secret is stored encrypted',
  async (t) => {
    const app = await build(t)
    const user = await signUp(app, 'enrol')
    const started = await user.inject({ method: 'POST', url: '/api/auth/mfa/totp' })
    t.equal(started.statusCode, 201)
    t.equal(started.headers['cache-control'], 'no-store', 'the secret is never cached')
    const enrolment = started.json<{ secret: string; otpauthUri: string; qrCode: string }>()
    t.match(enrolment.secret, /^[A-Z2-7]{32}$/, '160-bit base32 secret')
    const uri = new URL(enrolment.otpauthUri)
    t.equal(uri.protocol, 'otpauth:')
    t.equal(uri.host, 'totp')
    t.equal(decodeURIComponent(uri.pathname), `/Bulwark:${user.username}`)
    t.equal(uri.searchParams.get('secret'), enrolment.secret)
    t.equal(uri.searchParams.get('issuer'), 'Bulwark')
    const svg = Buffer.from(
      enrolment.qrCode.replace(/^data:image\/svg\+xml;base64,/, ''),
      'base64',
    ).toString()
    t.match(svg, /^<svg[^>]*>[\s\S]*<\/svg>$/, 'a QR code as an SVG data URL')

    const [row] = await app.sql<{ secret: string }[]>`select secret from mfa_totp where user_id = ${user.id}`
    t.match(row?.secret, /^enc:v1:t1:/, 'encrypted under the data key')
    t.notMatch(row?.secret, enrolment.secret, 'no plaintext secret in the database')

    // Pending, an authenticator is not yet a second factor: sign-in stays one step.
    t.notOk((await attemptLogin(app, user.username)).json().mfaRequired)

    const wrong = await user.inject({
      method: 'POST',
      url: '/api/auth/mfa/totp/confirm',
      payload: { code: '000000' },
    })
    expectProblem(t, wrong, 401, `${P}invalid-mfa-code`)
    const confirm = await user.inject({
      method: 'POST',
      url: '/api/auth/mfa/totp/confirm',
      payload: { code: totpCode(enrolment.secret) },
    })
    t.equal(confirm.statusCode, 200)
    const codes = confirm.json<{ recoveryCodes: string[] }>().recoveryCodes
    t.equal(codes.length, 10)
    t.equal(new Set(codes).size, 10)
    for (const code of codes) t.match(code, /^[a-z2-7]{6}-[a-z2-7]{6}-[a-z2-7]{6}-[a-z2-7]{6}$/)
    const stored = await app.sql<
      { hash: Buffer }[]
    >`select code_hash as hash from mfa_recovery_codes where user_id = ${user.id}`
    t.equal(stored.length, 10)
    t.notOk(
      stored.some((r) => codes.some((c) => r.hash.toString('utf8').includes(c.replace(/-/g, '')))),
      'codes stored only as hashes',
    )

    const again = await user.inject({ method: 'POST', url: '/api/auth/mfa/totp' })
    expectProblem(t, again, 409, `${P}conflict`, 'a second enrolment needs the first removed')
    const status = await user.inject('/api/auth/mfa')
    t.same(status.json(), { totp: true, recoveryCodesLeft: 10 })
    const events = await app.sql<{ event: string }[]>`
    select event from audit_events where user_id = ${user.id} and event like 'auth.mfa.%' order by created_at
  `
    t.same(
      events.map((e) => e.event),
      ['auth.mfa.totp_enrolment_started', 'auth.mfa.code_failed', 'auth.mfa.totp_enrolled'],
    )
  },
)

t.test('sign-in with two-factor: no cookie after the password, a session after the code', async (t) => {
  const app = await build(t)
  const user = await signUp(app, 'twostep')
  const { secret } = await enrolTotp(app, user)

  const first = await attemptLogin(app, user.username)
  t.equal(first.statusCode, 200)
  const challenge = first.json<{ mfaRequired: boolean; mfaToken: string; expiresIn: number }>()
  t.same(Object.keys(challenge).sort(), ['expiresIn', 'mfaRequired', 'mfaToken'], 'no access token yet')
  t.equal(challenge.mfaRequired, true)
  t.equal(challenge.expiresIn, 300)
  t.same(first.cookies, [], 'no cookie of any kind after the password alone')
  t.equal(first.headers['cache-control'], 'no-store')

  const wrongPassword = await attemptLogin(app, user.username, 'Not-The-Password-123')
  expectProblem(t, wrongPassword, 401, `${P}invalid-credentials`, 'the password step is unchanged')

  const done = await verifyMfa(app, challenge.mfaToken, totpCode(secret))
  t.equal(done.statusCode, 200)
  const body = done.json<{ accessToken: string; user: { id: string } }>()
  t.equal(body.user.id, user.id)
  t.same(
    done.cookies.map((c) => c.name).sort(),
    ['access_token', 'device', 'refresh_token'],
    'the cookies of a login, and a device cookie',
  )
  const claims = tokenClaims(body.accessToken)
  t.same(claims.amr, ['pwd', 'otp', 'mfa'])
  t.ok(Math.abs(Number(claims.auth_time) - Date.now() / 1000) < 60, 'auth_time is now')
  const me = await injectAs(app, body.accessToken)('/api/users/me')
  t.equal(me.statusCode, 200, 'a working session')

  const reused = await verifyMfa(app, challenge.mfaToken, totpCode(secret, Date.now() + 30_000))
  expectProblem(t, reused, 401, `${P}invalid-mfa-token`, 'an mfaToken completes one sign-in')
})

t.test('a TOTP code is accepted once: replayed in a second sign-in it is refused', async (t) => {
  const app = await build(t)
  const user = await signUp(app, 'replay')
  const { secret } = await enrolTotp(app, user)
  const code = totpCode(secret)
  const one = (await attemptLogin(app, user.username)).json<{ mfaToken: string }>().mfaToken
  t.equal((await verifyMfa(app, one, code)).statusCode, 200)
  const two = (await attemptLogin(app, user.username)).json<{ mfaToken: string }>().mfaToken
  expectProblem(t, await verifyMfa(app, two, code), 401, `${P}invalid-mfa-code`, 'the same code again')
  const older = totpCode(secret, Date.now() - 30_000)
  expectProblem(
    t,
    await verifyMfa(app, two, older),
    401,
    `${P}invalid-mfa-code`,
    'an older step after a newer one',
  )
  const [audit] = await app.sql<{ detail: { reason: string } }[]>`
    select detail from audit_events where user_id = ${user.id} and event = 'auth.mfa.code_failed'
    order by id limit 1
  `
  t.equal(audit?.detail.reason, 'replayed', 'audited as a replay')
  t.equal(
    (await verifyMfa(app, two, totpCode(secret, Date.now() + 30_000))).statusCode,
    200,
    'the next step works',
  )
})

t.test('an expired mfaToken is refused even with the right code', async (t) => {
  const app = await build(t)
  const user = await signUp(app, 'expired')
  const { secret } = await enrolTotp(app, user)
  const { mfaToken } = (await attemptLogin(app, user.username)).json<{ mfaToken: string }>()
  // Five minutes pass.
  await app.sql`update mfa_challenges set expires_at = now() - interval '1 second' where user_id = ${user.id}`
  expectProblem(t, await verifyMfa(app, mfaToken, totpCode(secret)), 401, `${P}invalid-mfa-token`)
})

t.test('a brute-forced mfaToken dies after 5 wrong codes, and the right code no longer helps', async (t) => {
  const app = await build(t)
  const user = await signUp(app, 'brute')
  const { secret } = await enrolTotp(app, user)
  const { mfaToken } = (await attemptLogin(app, user.username)).json<{ mfaToken: string }>()
  const right = totpCode(secret)
  const wrongCodes = ['000000', '111111', '222222', '333333', '444444'].filter((c) => c !== right)
  for (const [i, code] of wrongCodes.slice(0, 4).entries()) {
    expectProblem(t, await verifyMfa(app, mfaToken, code), 401, `${P}invalid-mfa-code`, `wrong code ${i + 1}`)
  }
  expectProblem(
    t,
    await verifyMfa(app, mfaToken, '555555' === right ? '666666' : '555555'),
    401,
    `${P}invalid-mfa-token`,
    'the fifth kills it',
  )
  expectProblem(
    t,
    await verifyMfa(app, mfaToken, right),
    401,
    `${P}invalid-mfa-token`,
    'dead for the right code too',
  )
  const [row] = await app.sql<
    { failures: number }[]
  >`select failures from mfa_challenges where user_id = ${user.id}`
  t.equal(row?.failures, 5)
  const unknown = await verifyMfa(app, 'A'.repeat(43), right)
  expectProblem(t, unknown, 401, `${P}invalid-mfa-token`, 'an unknown token looks the same')
  expectProblem(
    t,
    await verifyMfa(app, 'short', right),
    400,
    `${P}validation-error`,
    'a malformed token is a 400',
  )
  const text = await app.inject({
    method: 'POST',
    url: '/api/auth/mfa/verify',
    payload: { mfaToken, code: '<script>' },
  })
  expectProblem(t, text, 400, `${P}validation-error`)
})

t.test('a recovery code signs in once; typed loosely it still works; used twice it fails', async (t) => {
  const app = await build(t)
  const user = await signUp(app, 'recovery')
  const { recoveryCodes } = await enrolTotp(app, user)
  const code = recoveryCodes[0] ?? ''
  const one = (await attemptLogin(app, user.username)).json<{ mfaToken: string }>().mfaToken
  const typed = ` ${code.toUpperCase().replace(/-/g, ' ')} `.trim()
  const ok = await verifyMfa(app, one, typed)
  t.equal(ok.statusCode, 200, 'upper case and spaces are accepted')
  t.same(tokenClaims(ok.json<{ accessToken: string }>().accessToken).amr, ['pwd', 'recovery', 'mfa'])
  const two = (await attemptLogin(app, user.username)).json<{ mfaToken: string }>().mfaToken
  expectProblem(t, await verifyMfa(app, two, code), 401, `${P}invalid-mfa-code`, 'the code is spent')
  const signedIn = injectAs(app, ok.json<{ accessToken: string }>().accessToken)
  t.same((await signedIn('/api/auth/mfa')).json(), { totp: true, recoveryCodesLeft: 9 })
  const [used] = await app.sql<{ detail: { left: number } }[]>`
    select detail from audit_events where user_id = ${user.id} and event = 'auth.mfa.recovery_code_used'
  `
  t.equal(used?.detail.left, 9, 'the use is audited with the codes left')
})

t.test('one mfaToken, ten racing codes (each a good recovery code): exactly one session', async (t) => {
  const app = await build(t)
  for (let round = 0; round < 3; round++) {
    const user = await signUp(app, 'race')
    const { recoveryCodes } = await enrolTotp(app, user)
    const { mfaToken } = (await attemptLogin(app, user.username)).json<{ mfaToken: string }>()
    const answers = await Promise.all(recoveryCodes.map((code) => verifyMfa(app, mfaToken, code)))
    const codes = answers.map((r) => r.statusCode)
    t.equal(codes.filter((c) => c === 200).length, 1, `one sign-in (${codes})`)
    t.ok(
      codes.every((c) => c === 200 || c === 401),
      'the others are 401s',
    )
    const [sessions] = await app.sql<{ n: number }[]>`
      select count(*)::int as n from sessions where user_id = ${user.id} and amr @> '{recovery}'
    `
    t.equal(sessions?.n, 1)
  }
})

t.test('recent authentication: old sessions must re-authenticate before changing two-factor', async (t) => {
  const app = await build(t)
  const user = await signUp(app, 'stepup')
  // Ten minutes pass since the sign-in.
  await app.sql`update sessions set auth_time = now() - interval '10 minutes' where user_id = ${user.id}`
  const stale = await user.inject({ method: 'POST', url: '/api/auth/mfa/totp' })
  expectProblem(t, stale, 401, `${P}reauthentication-required`)
  t.equal(stale.headers['www-authenticate'], 'Bearer error="insufficient_user_authentication", max_age=300')

  const wrong = await user.inject({
    method: 'POST',
    url: '/api/auth/reauthenticate',
    payload: { password: 'Not-The-Password-123' },
  })
  expectProblem(t, wrong, 403, `${P}invalid-current-password`)
  const again = await user.inject({
    method: 'POST',
    url: '/api/auth/reauthenticate',
    payload: { password: TEST_PASSWORD },
  })
  t.equal(again.statusCode, 200)
  const token = again.json<{ accessToken: string }>().accessToken
  const claims = tokenClaims(token)
  t.ok(Math.abs(Number(claims.auth_time) - Date.now() / 1000) < 60, 'the new token carries the new auth_time')
  t.same(claims.amr, ['pwd'])
  t.ok(
    again.cookies.some((c) => c.name === 'access_token'),
    'the access cookie is renewed too',
  )
  const { secret } = await enrolTotp(app, user)
  t.pass('enrolment works with the same old token once the session is re-authenticated')

  // With two-factor on, the password alone no longer re-authenticates.
  await app.sql`update sessions set auth_time = now() - interval '10 minutes' where user_id = ${user.id}`
  const noCode = await user.inject({
    method: 'POST',
    url: '/api/auth/reauthenticate',
    payload: { password: TEST_PASSWORD },
  })
  expectProblem(t, noCode, 401, `${P}invalid-mfa-code`)
  const withCode = await user.inject({
    method: 'POST',
    url: '/api/auth/reauthenticate',
    payload: { password: TEST_PASSWORD, code: totpCode(secret) },
  })
  t.equal(withCode.statusCode, 200)
  t.same(tokenClaims(withCode.json<{ accessToken: string }>().accessToken).amr, ['pwd', 'otp', 'mfa'])
  const events = await app.sql<{ event: string }[]>`
    select event from audit_events where user_id = ${user.id} and event like 'auth.reauth%' order by created_at
  `
  t.same(
    events.map((e) => e.event),
    ['auth.reauthenticate.failure', 'auth.reauthenticated', 'auth.reauthenticated'],
  )
})

t.test('recovery codes are replaced and two-factor removed only with recent authentication', async (t) => {
  const app = await build(t)
  const user = await signUp(app, 'manage')
  const { recoveryCodes, secret } = await enrolTotp(app, user)
  await app.sql`update sessions set auth_time = now() - interval '10 minutes' where user_id = ${user.id}`
  for (const [method, url] of [
    ['POST', '/api/auth/mfa/recovery-codes'],
    ['DELETE', '/api/auth/mfa/totp'],
  ] as const) {
    expectProblem(
      t,
      await user.inject({ method, url }),
      401,
      `${P}reauthentication-required`,
      `${method} ${url}`,
    )
  }
  await user.inject({
    method: 'POST',
    url: '/api/auth/reauthenticate',
    payload: { password: TEST_PASSWORD, code: totpCode(secret) },
  })
  const replaced = await user.inject({ method: 'POST', url: '/api/auth/mfa/recovery-codes' })
  t.equal(replaced.statusCode, 200)
  const fresh = replaced.json<{ recoveryCodes: string[] }>().recoveryCodes
  t.equal(fresh.length, 10)
  const { mfaToken } = (await attemptLogin(app, user.username)).json<{ mfaToken: string }>()
  expectProblem(
    t,
    await verifyMfa(app, mfaToken, recoveryCodes[0] ?? ''),
    401,
    `${P}invalid-mfa-code`,
    'old codes are gone',
  )
  t.equal((await verifyMfa(app, mfaToken, fresh[0] ?? '')).statusCode, 200, 'new codes work')

  const removed = await user.inject({ method: 'DELETE', url: '/api/auth/mfa/totp' })
  t.equal(removed.statusCode, 204)
  const plain = await attemptLogin(app, user.username)
  t.ok(plain.json<{ accessToken?: string }>().accessToken, 'sign-in is one step again')
  expectProblem(
    t,
    await user.inject({ method: 'DELETE', url: '/api/auth/mfa/totp' }),
    404,
    undefined,
    'nothing left to remove',
  )
  expectProblem(
    t,
    await user.inject({ method: 'POST', url: '/api/auth/mfa/recovery-codes' }),
    409,
    `${P}conflict`,
  )
  const [stored] = await app.sql<{ n: number }[]>`
    select (select count(*) from mfa_totp where user_id = ${user.id}) + (select count(*) from mfa_recovery_codes where user_id = ${user.id}) as n
  `
  t.equal(Number(stored?.n), 0, 'secret and codes deleted')
})

t.test(
  'MFA_REQUIRED_ROLES=admin: an admin without a second factor may sign in and enrol, and do nothing else',
  async (t) => {
    const app = await build(t, { env: { MFA_REQUIRED_ROLES: 'admin' } })
    const victim = await signUp(app, 'mfavictim')
    const posted = await victim.inject({ method: 'POST', url: '/api/comments', payload: { body: 'mine' } })
    t.equal(posted.statusCode, 201, 'users are not affected')
    const admin = await signUp(app, 'mfaadmin', { role: 'admin' })
    expectProblem(t, await admin.inject('/api/admin/users'), 403, `${P}mfa-required`)
    expectProblem(t, await admin.inject('/API/admin//users'), 403, `${P}mfa-required`, 'every spelling')
    // Regression (review): an admin's powers also live on user-level routes: other users' emails
    // and deleting anyone's comment. The principal's role decides, not the route's.
    const profile = await admin.inject(`/api/users/${victim.username}`)
    expectProblem(t, profile, 403, `${P}mfa-required`, 'no admin-only profile data')
    const commentId = posted.json<{ id: string }>().id
    const del = await admin.inject({ method: 'DELETE', url: `/api/comments/${commentId}` })
    expectProblem(t, del, 403, `${P}mfa-required`, "no deleting others' comments")
    t.equal((await admin.inject('/api/users/me')).statusCode, 200, 'the account itself stays reachable')

    const { secret } = await enrolTotp(app, admin)
    t.equal((await admin.inject('/api/admin/users')).statusCode, 200, 'the session that enrolled counts')

    const { mfaToken } = (await attemptLogin(app, admin.username)).json<{ mfaToken: string }>()
    const next = await verifyMfa(app, mfaToken, totpCode(secret, Date.now() + 30_000))
    const fresh = injectAs(app, next.json<{ accessToken: string }>().accessToken)
    t.equal((await fresh('/api/admin/users')).statusCode, 200, 'a two-step sign-in is enough')

    // Removing the factor ends the other sessions and takes it from this one.
    t.equal((await fresh({ method: 'DELETE', url: '/api/auth/mfa/totp' })).statusCode, 204)
    expectProblem(t, await fresh('/api/admin/users'), 403, `${P}mfa-required`, 'this session')
    expectProblem(t, await admin.inject('/api/admin/users'), 401, undefined, 'the other session ended')
  },
)

t.test('MFA_REQUIRED_ROLES=user: everyone needs a second factor, the admin API included', async (t) => {
  const app = await build(t, { env: { MFA_REQUIRED_ROLES: 'user' } })
  const user = await signUp(app, 'mfauser')
  const post = { method: 'POST' as const, url: '/api/comments', payload: { body: 'hello' } }
  expectProblem(t, await user.inject(post), 403, `${P}mfa-required`)
  t.equal((await user.inject('/api/users/me')).statusCode, 200, 'the account itself stays reachable')
  await enrolTotp(app, user)
  t.equal((await user.inject(post)).statusCode, 201)
  // Regression (review): a listed role covers every role above it.
  const admin = await signUp(app, 'mfauseradmin', { role: 'admin' })
  expectProblem(t, await admin.inject('/api/admin/users'), 403, `${P}mfa-required`)
})

t.test('regression: turning two-factor on ends every older, password-only session', async (t) => {
  const app = await build(t)
  const owner = await signUp(app, 'stale')
  // Someone who phished the password signed in before the owner turned two-factor on.
  const session = await attemptLogin(app, owner.username)
  const asIntruder = injectAs(app, session.json<{ accessToken: string }>().accessToken)
  t.equal((await asIntruder('/api/users/me')).statusCode, 200)
  await enrolTotp(app, owner)
  expectProblem(t, await asIntruder('/api/users/me'), 401, `${P}invalid-token`, 'the old session ended')
  expectProblem(t, await asIntruder({ method: 'DELETE', url: '/api/auth/mfa/totp' }), 401)
  const changed = await asIntruder({
    method: 'PUT',
    url: '/api/users/me/password',
    payload: { currentPassword: TEST_PASSWORD, newPassword: OTHER_PASSWORD },
  })
  expectProblem(t, changed, 401, undefined, 'nor can it change the password')
  t.equal((await owner.inject('/api/auth/mfa')).json<{ totp: boolean }>().totp, true, 'two-factor still on')
  const [row] = await app.sql<{ detail: { sessionsRevoked: number } }[]>`
    select detail from audit_events where user_id = ${owner.id} and event = 'auth.mfa.totp_enrolled'
  `
  t.equal(row?.detail.sessionsRevoked, 1)
})

t.test(
  'regression: only the session that started an enrolment confirms it, and guesses are limited',
  async (t) => {
    const app = await build(t, { env: { LOGIN_ACCOUNT_MAX_FAILURES: '3' } })
    const owner = await signUp(app, 'pending')
    const other = injectAs(
      app,
      (await attemptLogin(app, owner.username)).json<{ accessToken: string }>().accessToken,
    )
    const started = await owner.inject({ method: 'POST', url: '/api/auth/mfa/totp' })
    const { secret } = started.json<{ secret: string }>()
    const elsewhere = await other({
      method: 'POST',
      url: '/api/auth/mfa/totp/confirm',
      payload: { code: totpCode(secret) },
    })
    expectProblem(t, elsewhere, 409, `${P}conflict`, 'another session, even with the right code')
    const confirm = (code: string) =>
      owner.inject({ method: 'POST', url: '/api/auth/mfa/totp/confirm', payload: { code } })
    const right = totpCode(secret)
    const wrong = right === '000000' ? '000001' : '000000'
    for (let i = 0; i < 3; i++) expectProblem(t, await confirm(wrong), 401, `${P}invalid-mfa-code`)
    expectProblem(
      t,
      await confirm(right),
      429,
      'urn:bulwark:problem:rate-limited',
      'the code budget is spent',
    )
  },
)

t.test(
  'regression: sign-out everywhere, a password change and an admin change end sign-ins waiting for their code',
  async (t) => {
    const app = await build(t)
    const user = await signUp(app, 'pendingout')
    const { secret } = await enrolTotp(app, user)
    const pending = (await attemptLogin(app, user.username)).json<{ mfaToken: string }>().mfaToken
    const changed = await user.inject({
      method: 'PUT',
      url: '/api/users/me/password',
      payload: { currentPassword: TEST_PASSWORD, newPassword: OTHER_PASSWORD },
    })
    t.equal(changed.statusCode, 204)
    const stale = await verifyMfa(app, pending, totpCode(secret))
    expectProblem(t, stale, 401, `${P}invalid-mfa-token`, 'begun with the old password, it cannot finish')
    const first = (await attemptLogin(app, user.username, OTHER_PASSWORD)).json<{ mfaToken: string }>()
      .mfaToken
    t.equal((await user.inject({ method: 'POST', url: '/api/auth/logout-all' })).statusCode, 204)
    expectProblem(
      t,
      await verifyMfa(app, first, totpCode(secret)),
      401,
      `${P}invalid-mfa-token`,
      'after logout-all',
    )
    const second = (await attemptLogin(app, user.username, OTHER_PASSWORD)).json<{ mfaToken: string }>()
      .mfaToken
    const admin = await signUp(app, 'pendingadmin', { role: 'admin' })
    const disabled = await admin.inject({
      method: 'PATCH',
      url: `/api/admin/users/${user.id}`,
      payload: { disabled: true },
    })
    t.equal(disabled.statusCode, 200)
    await app.sql`update users set disabled = false where id = ${user.id}`
    expectProblem(
      t,
      await verifyMfa(app, second, totpCode(secret)),
      401,
      `${P}invalid-mfa-token`,
      'after an admin change',
    )
  },
)

t.test('MFA_REQUIRED_ROLES takes only roles', async (t) => {
  await t.rejects(build(t, { env: { MFA_REQUIRED_ROLES: 'admin,root' } }), /MFA_REQUIRED_ROLES is invalid/)
})
