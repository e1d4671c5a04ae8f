import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  type PublicKeyCredentialRequestOptionsJSON,
  verifyAuthenticationResponse,
} from '@simplewebauthn/server'
import { forbidden } from '../lib/errors.js'
import * as repo from '../repositories/passkeys.js'
import { findUserByLogin, shareLockUser, type UserRow } from '../repositories/users.js'
import type { AuthMethod } from '../schemas/auth.js'
import type { PasskeyLoginBody, PasskeyLoginOptionsBody } from '../schemas/passkeys.js'
import { budgetOf } from './login-throttle.js'
import {
  CeremonyFailure,
  CHALLENGE_TTL_SECONDS,
  challengeHash,
  failureOf,
  type PasskeyContext,
  refuse,
  relyingParty,
  takeChallenge,
  userIdOfHandle,
} from './passkeys.js'
import { type SessionStartContext, type SignedIn, startSession } from './session-start.js'
import { refuseUnverified, type SignInContext } from './sign-in.js'

/** Signing in with a passkey (WebAuthn L3 §7.2): it ends like a password sign-in (services/session-start.ts). */

type PasskeySignInContext = PasskeyContext & SessionStartContext & SignInContext

/** Printable ASCII, as password sign-in accepts names. */
const ASCII = /^[\x20-\x7e]+$/

/**
 * Request options. allowCredentials stays empty whether or not a username is given (passkeys are
 * discoverable), so the answer never tells which accounts exist nor lists their credential ids
 * (WebAuthn L3 §14.6.3); a username only binds the challenge to that account.
 */
export async function loginOptions(
  ctx: PasskeyContext,
  body: PasskeyLoginOptionsBody,
): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const rp = relyingParty(ctx.config)
  const name = body.username?.trim()
  const user = name && ASCII.test(name) ? await findUserByLogin(ctx.sql, ctx.cipher, name) : undefined
  const options = await generateAuthenticationOptions({
    rpID: rp.rpID,
    timeout: CHALLENGE_TTL_SECONDS * 1000,
    userVerification: 'required',
    allowCredentials: [],
  })
  const hash = challengeHash(options.challenge)
  await ctx.sql.begin((tx) =>
    repo.insertChallenge(tx, {
      hash,
      purpose: 'login',
      userId: user?.id ?? null,
      named: body.username !== undefined,
      ttlSeconds: CHALLENGE_TTL_SECONDS,
    }),
  )
  return options
}

/** Checks the assertion against the stored credential: everything but the account's state. */
async function verifyAssertion(ctx: PasskeyContext, body: PasskeyLoginBody) {
  const rp = relyingParty(ctx.config)
  const { credential } = body
  const challenge = await takeChallenge(ctx, credential.response.clientDataJSON, 'login')
  const found = await repo.findCredential(ctx.sql, Buffer.from(credential.rawId, 'base64url'))
  if (!found) throw new CeremonyFailure('unknown_credential')
  try {
    return await checkAssertion(rp, body, challenge, found)
  } catch (error) {
    if (error instanceof CeremonyFailure) error.userId = found.userId
    throw error
  }
}

async function checkAssertion(
  rp: ReturnType<typeof relyingParty>,
  { credential }: PasskeyLoginBody,
  challenge: Awaited<ReturnType<typeof takeChallenge>>,
  found: repo.CredentialRow,
) {
  const passkeyId = found.id
  // WebAuthn L3 §7.2 step 6: the account named at the start, or the one the user handle names, owns it.
  if (challenge.named && challenge.userId !== found.userId)
    throw new CeremonyFailure('other_user', { passkeyId })
  const handle = credential.response.userHandle
  if (handle ? userIdOfHandle(handle) !== found.userId : !challenge.named) {
    throw new CeremonyFailure('user_handle', { passkeyId })
  }
  const result = await verifyAuthenticationResponse({
    response: credential as unknown as AuthenticationResponseJSON,
    expectedChallenge: challenge.value,
    expectedOrigin: rp.origins,
    expectedRPID: rp.rpID,
    // Counter 0 here: the library judges the counter before the signature; it is judged below, after it.
    credential: { id: credential.id, publicKey: new Uint8Array(found.publicKey), counter: 0 },
    requireUserVerification: true,
  }).catch((error: unknown) => {
    throw failureOf(error)
  })
  if (!result.verified) throw new CeremonyFailure('bad_signature', { passkeyId })
  const info = result.authenticationInfo
  // WebAuthn L3 §6.1.3: backup eligibility is fixed when the credential is made; a change is a forgery.
  if ((info.credentialDeviceType === 'multiDevice') !== found.backupEligible) {
    throw new CeremonyFailure('backup_eligibility_changed', { passkeyId })
  }
  // §7.2 step 21: a signed counter that does not move forward means a cloned authenticator.
  const stored = Number(found.counter)
  if ((info.newCounter > 0 || stored > 0) && info.newCounter <= stored) throw cloned(found, info.newCounter)
  return { found, counter: info.newCounter, backedUp: info.credentialBackedUp }
}

function cloned(found: repo.CredentialRow, counter: number): CeremonyFailure {
  const credentialId = found.credentialId.toString('base64url')
  const detail = { passkeyId: found.id, credentialId, counter, stored: Number(found.counter) }
  return new CeremonyFailure('counter_rollback', detail, 'auth.passkey.cloned')
}

/**
 * A verified assertion signs in like a password and second factor would: the same refusals
 * (disabled: 403 after a valid assertion; REQUIRE_VERIFIED_EMAIL), the same session, cookies and audit.
 */
export async function loginWithPasskey(ctx: PasskeySignInContext, body: PasskeyLoginBody): Promise<SignedIn> {
  let owner: string | null = null
  try {
    const assertion = await verifyAssertion(ctx, body)
    const { found } = assertion
    owner = found.userId
    type Outcome = { signedIn: SignedIn } | { disabled: true } | { unverified: UserRow }
    const outcome = await ctx.sql.begin(async (tx): Promise<Outcome> => {
      const user = await shareLockUser(tx, ctx.cipher, found.userId)
      if (!user) throw new CeremonyFailure('unknown_credential')
      if (user.disabled) return { disabled: true }
      if (ctx.config.REQUIRE_VERIFIED_EMAIL && user.emailVerifiedAt === null) return { unverified: user }
      // The update re-checks the counter, so two assertions racing past the check above cannot both pass.
      if (!(await repo.recordUse(tx, found.id, assertion))) throw cloned(found, assertion.counter)
      // RFC 8176: hwk for a device-bound key (BE 0, fixed), swk for a syncable one; UV makes it mfa.
      const amr: AuthMethod[] = [found.backupEligible ? 'swk' : 'hwk', 'mfa']
      const deviceId = budgetOf(ctx.throttle, user).device
      return {
        signedIn: await startSession(tx, ctx, user, { amr, passwordHash: user.passwordHash, deviceId }),
      }
    })
    if ('signedIn' in outcome) return outcome.signedIn
    if ('unverified' in outcome) return await refuseUnverified(ctx, outcome.unverified)
    await ctx.audit('auth.login.failure', found.userId, { reason: 'disabled', method: 'passkey' })
    throw forbidden('This account is disabled.', 'account-disabled')
  } catch (error) {
    if (error instanceof CeremonyFailure) throw await refuse(ctx, error, 'login', owner)
    throw error
  }
}
