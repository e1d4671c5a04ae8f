import {
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type RegistrationResponseJSON,
  verifyRegistrationResponse,
} from '@simplewebauthn/server'
import { conflict } from '../lib/errors.js'
import * as repo from '../repositories/passkeys.js'
import type { Principal } from '../repositories/sessions.js'
import { lockUser } from '../repositories/users.js'
import type { Passkey, RegisterPasskeyBody } from '../schemas/passkeys.js'
import { notify } from './notices.js'
import {
  ALGORITHMS,
  CeremonyFailure,
  CHALLENGE_TTL_SECONDS,
  challengeHash,
  cleanName,
  failureOf,
  MAX_PASSKEYS,
  type PasskeyContext,
  refuse,
  relyingParty,
  takeChallenge,
  toPasskey,
  userHandleOf,
} from './passkeys.js'

/** Registering a passkey (WebAuthn L3 §7.1), for a signed-in user who authenticated recently. */

const tooMany = () =>
  conflict(`You have ${MAX_PASSKEYS} passkeys, the most an account may have: remove one first.`)

/**
 * Creation options: a discoverable credential (residentKey required, so sign-in needs no username
 * and no credential list an attacker could read), user verification required, no attestation.
 */
export async function registrationOptions(
  ctx: PasskeyContext,
  principal: Principal,
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const rp = relyingParty(ctx.config)
  const existing = await repo.listCredentials(ctx.sql, principal.userId)
  if (existing.length >= MAX_PASSKEYS) throw tooMany()
  const options = await generateRegistrationOptions({
    rpName: rp.rpName,
    rpID: rp.rpID,
    userName: principal.username,
    userDisplayName: principal.username,
    userID: userHandleOf(principal.userId),
    timeout: CHALLENGE_TTL_SECONDS * 1000,
    attestationType: 'none',
    // The same authenticator is not registered twice (WebAuthn L3 §5.4.3).
    excludeCredentials: existing.map((c) => ({
      id: c.credentialId.toString('base64url'),
      transports: c.transports,
    })),
    // NIST SP 800-63B-4 §3.1.7: a verified (PIN or biometric) passkey is multi-factor on its own.
    authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
    supportedAlgorithmIDs: ALGORITHMS,
  })
  const hash = challengeHash(options.challenge)
  await ctx.sql.begin((tx) =>
    repo.insertChallenge(tx, {
      hash,
      purpose: 'register',
      userId: principal.userId,
      named: true,
      ttlSeconds: CHALLENGE_TTL_SECONDS,
    }),
  )
  return options
}

/** Verifies the attestation (format `none` or a verifiable one) and stores the credential. */
export async function registerPasskey(
  ctx: PasskeyContext,
  principal: Principal,
  body: RegisterPasskeyBody,
): Promise<Passkey> {
  const rp = relyingParty(ctx.config)
  const name = cleanName(body.name)
  const { userId } = principal
  try {
    const challenge = await takeChallenge(ctx, body.credential.response.clientDataJSON, 'register')
    if (challenge.userId !== userId) throw new CeremonyFailure('other_user')
    const verification = await verifyRegistrationResponse({
      response: body.credential as unknown as RegistrationResponseJSON,
      expectedChallenge: challenge.value,
      expectedOrigin: rp.origins,
      expectedRPID: rp.rpID,
      requireUserVerification: true,
      supportedAlgorithmIDs: ALGORITHMS,
    }).catch((error: unknown) => {
      throw failureOf(error)
    })
    if (!verification.verified) throw new CeremonyFailure('not_verified')
    const info = verification.registrationInfo
    const credentialId = Buffer.from(info.credential.id, 'base64url')
    // WebAuthn L3 §7.1 step 25 (≤ 1023 bytes) and §4 (≥ 16 bytes): refused here, not by the table's check.
    if (credentialId.length < 16 || credentialId.length > 1023)
      throw new CeremonyFailure('credential_id_length')
    const row = await ctx.sql.begin(async (tx) => {
      // The user row serializes this user's registrations, so the cap holds under a race.
      const user = await lockUser(tx, ctx.cipher, userId)
      if ((await repo.countCredentials(tx, userId)) >= MAX_PASSKEYS) throw tooMany()
      const inserted = await repo.insertCredential(tx, {
        id: crypto.randomUUID(),
        userId,
        credentialId,
        publicKey: Buffer.from(info.credential.publicKey),
        counter: info.credential.counter,
        transports: (body.credential.response.transports ?? []).slice(0, 10),
        backupEligible: info.credentialDeviceType === 'multiDevice',
        backedUp: info.credentialBackedUp,
        aaguid: info.aaguid,
        name,
      })
      // WebAuthn L3 §7.1 step 26: a credential id registered already (to anyone) fails the ceremony.
      if (!inserted) throw new CeremonyFailure('credential_exists')
      const detail = {
        passkeyId: inserted.id,
        deviceType: info.credentialDeviceType,
        backedUp: info.credentialBackedUp,
      }
      await ctx.audit('auth.passkey.registered', userId, detail, tx)
      // A new way to sign in is told to the owner's address (OWASP ASVS 5.0 6.3.7).
      if (user) await notify(ctx, tx, user, 'passkey-added', { name: inserted.name })
      return inserted
    })
    return toPasskey(row)
  } catch (error) {
    if (error instanceof CeremonyFailure) throw await refuse(ctx, error, 'register', userId)
    throw error
  }
}
