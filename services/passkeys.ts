import { createHash } from 'node:crypto'
import { type AppError, invalidField, invalidPasskey, notFound, passkeysDisabled } from '../lib/errors.js'
import { passkeysEnabled } from '../lib/webauthn-config.js'
import * as repo from '../repositories/passkeys.js'
import { lockUser } from '../repositories/users.js'
import type { Passkey } from '../schemas/passkeys.js'
import type { ServiceContext } from './context.js'
import { notify } from './notices.js'

/** Passkeys (WebAuthn Level 3): what both ceremonies share, and the list, rename and removal of passkeys. */

export type PasskeyContext = Pick<ServiceContext, 'sql' | 'config' | 'audit' | 'cipher'>

/** A ceremony's challenge lives 5 minutes and serves one ceremony (WebAuthn L3 §13.4.3). */
export const CHALLENGE_TTL_SECONDS = 300
/** Passkeys per account: enough for every device a person has, and a bound on the list. */
export const MAX_PASSKEYS = 20
/** EdDSA, ES256, RS256 (COSE algorithm ids, RFC 9053): what platform authenticators and keys use. */
export const ALGORITHMS = [-8, -7, -257]

/** The relying party: RP ID and the exact origins ceremonies may run on; 501 when passkeys are off. */
export function relyingParty(config: PasskeyContext['config']) {
  if (!passkeysEnabled(config) || !config.WEBAUTHN_RP_ID) throw passkeysDisabled()
  return { rpID: config.WEBAUTHN_RP_ID, rpName: config.WEBAUTHN_RP_NAME, origins: config.WEBAUTHN_ORIGINS }
}

/** A failed ceremony: its reason is audited, never told (the client gets invalid-passkey). */
export class CeremonyFailure extends Error {
  /** The account the failure concerns, once the credential is known. */
  userId: string | null = null
  constructor(
    readonly reason: string,
    readonly detail: Record<string, string | number> = {},
    readonly event = 'auth.passkey.failed',
  ) {
    super(reason)
  }
}

/** Audits a failure and answers the one problem every failure gets (OWASP ASVS 5.0 6.3.8). */
export async function refuse(
  ctx: PasskeyContext,
  failure: CeremonyFailure,
  stage: 'register' | 'login',
  userId: string | null,
): Promise<AppError> {
  await ctx.audit(failure.event, failure.userId ?? userId, {
    stage,
    reason: failure.reason,
    ...failure.detail,
  })
  return invalidPasskey()
}

/** What a verifier error says, as an audit reason (the library throws plain Errors). */
export function failureOf(error: unknown): CeremonyFailure {
  const message = error instanceof Error ? error.message : String(error)
  const reasons: [RegExp, string][] = [
    [/origin/i, 'origin'],
    [/RP ?ID/i, 'rp_id'],
    [/verification/i, 'user_verification'],
    [/present/i, 'user_presence'],
    [/response type/i, 'ceremony_type'],
    [/alg/i, 'algorithm'],
  ]
  const reason = reasons.find(([pattern]) => pattern.test(message))?.[1] ?? 'malformed'
  return new CeremonyFailure(reason, { message: message.slice(0, 200) })
}

const hashChallenge = (challenge: string) => createHash('sha256').update(challenge).digest()
export const challengeHash = hashChallenge

/** 32 random bytes in base64url, as generate*Options() make them. */
const CHALLENGE = /^[A-Za-z0-9_-]{43}$/

/**
 * Finds and spends the challenge the client signed (clientDataJSON.challenge, looked up by its hash),
 * whatever happens next: a replay, an expired one, or one of the other ceremony fails here.
 */
export async function takeChallenge(
  ctx: PasskeyContext,
  clientDataJSON: string,
  purpose: repo.ChallengePurpose,
) {
  let client: { challenge?: unknown; crossOrigin?: unknown; topOrigin?: unknown }
  try {
    client = JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8')) ?? {}
  } catch {
    throw new CeremonyFailure('malformed')
  }
  const { challenge } = client
  if (typeof challenge !== 'string' || !CHALLENGE.test(challenge)) throw new CeremonyFailure('malformed')
  const row = await repo.consumeChallenge(ctx.sql, hashChallenge(challenge))
  if (!row) throw new CeremonyFailure('unknown_challenge')
  if (row.expired) throw new CeremonyFailure('challenge_expired')
  if (row.purpose !== purpose) throw new CeremonyFailure('challenge_purpose')
  // WebAuthn L3 §7.1 steps 10–11, §7.2 steps 13–14: we expect no ceremony inside another site's iframe.
  if (client.crossOrigin || client.topOrigin !== undefined) throw new CeremonyFailure('cross_origin')
  return { value: challenge, userId: row.userId, named: row.named }
}

/** The WebAuthn user handle: the user id's 16 bytes (random, no personal data: WebAuthn L3 §14.6.1). */
export const userHandleOf = (userId: string) => new Uint8Array(Buffer.from(userId.replace(/-/g, ''), 'hex'))

/** The user id a user handle names, or null when it is no handle of ours. */
export function userIdOfHandle(handle: string): string | null {
  const hex = Buffer.from(handle, 'base64url').toString('hex')
  if (hex.length !== 32) return null
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** Control, unassigned, private-use and bidirectional-override characters: not in a name shown back. */
const UNPRINTABLE = /[\p{Cc}\p{Cs}\p{Co}\p{Cn}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u

/** A passkey's name: trimmed and NFC-normalized, 1–64 characters; 'Passkey' when none is given. */
export function cleanName(raw: string | undefined): string {
  if (raw === undefined) return 'Passkey'
  const name = raw.normalize('NFC').trim()
  if (name.length < 1 || [...name].length > 64 || UNPRINTABLE.test(name)) {
    throw invalidField('/name', 'must be 1–64 printable characters')
  }
  return name
}

export function toPasskey(row: repo.CredentialRow): Passkey {
  return {
    id: row.id,
    name: row.name,
    createdAt: row.createdAt.toISOString(),
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    deviceType: row.backupEligible ? 'multiDevice' : 'singleDevice',
    backedUp: row.backedUp,
    transports: row.transports,
  }
}

export async function listPasskeys(ctx: PasskeyContext, userId: string): Promise<Passkey[]> {
  return (await repo.listCredentials(ctx.sql, userId)).map(toPasskey)
}

/** Another user's passkey is 404, like one that does not exist (OWASP ASVS 5.0 8.2.2). */
export async function renamePasskey(
  ctx: PasskeyContext,
  userId: string,
  id: string,
  name: string,
): Promise<Passkey> {
  const clean = cleanName(name)
  const row = await repo.renameCredential(ctx.sql, userId, id, clean)
  if (!row) throw notFound()
  await ctx.audit('auth.passkey.renamed', userId, { passkeyId: id })
  return toPasskey(row)
}

export async function removePasskey(ctx: PasskeyContext, userId: string, id: string): Promise<void> {
  await ctx.sql.begin(async (tx) => {
    // The user row before the credential: the order registration and sign-in take.
    const user = await lockUser(tx, ctx.cipher, userId)
    const name = await repo.deleteCredential(tx, userId, id)
    if (!user || name === undefined) throw notFound()
    await ctx.audit('auth.passkey.removed', userId, { passkeyId: id }, tx)
    // OWASP ASVS 5.0 6.3.7: a change to the ways of signing in is told to the owner's address.
    await notify(ctx, tx, user, 'passkey-removed', { name })
  })
}
