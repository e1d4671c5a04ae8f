import { type Static, Type } from '@sinclair/typebox'
import { IdParams, ref } from './common.js'

/** Schemas of accounts and authentication: usernames, passwords, tokens, sessions. */

export const Username = Type.String({
  minLength: 3,
  maxLength: 32,
  pattern: '^[A-Za-z0-9_.-]+$',
  'x-message': 'must be 3–32 characters of letters, digits, "_", "." or "-"',
})
export const Email = Type.String({
  format: 'email',
  maxLength: 254,
  'x-message': 'must be a valid email address',
})

/** At most this many code points after NFKC (NIST SP 800-63B-4 §3.1.1.2 asks for at least 64). */
export const MAX_PASSWORD_LENGTH = 256
/**
 * The bound on a password as sent, before normalization: a composed character decomposes into at
 * most 4 code points, so any normalization form of an allowed password fits (and sign-in accepts it).
 */
export const MAX_PASSWORD_INPUT = 4 * MAX_PASSWORD_LENGTH

/** The rules of a new password as clients read them; services/password-policy.ts applies them. */
export const passwordRules = (minLength: number) =>
  `At least ${minLength} and at most ${MAX_PASSWORD_LENGTH} characters, counted as Unicode code points ` +
  'after NFKC normalization; any characters (spaces, accents, emoji), with no rules about which kinds. ' +
  'Refused when it is a common or breached password, or contains your username, the first part of ' +
  'your email address or the name of this service; each broken rule is named in `errors`.'

/**
 * A new password. JSON Schema cannot count after NFKC nor look words up, so the schema only bounds
 * the input and documents the rules (OWASP ASVS 5.0 6.2.1, 6.2.9); the policy names each broken one.
 */
export const newPassword = (minLength: number) =>
  Type.String({
    maxLength: MAX_PASSWORD_INPUT,
    description: passwordRules(minLength),
    'x-message': `must be a string of at most ${MAX_PASSWORD_LENGTH} characters`,
  })

/** A password being checked, not set: no rules but the input bound (older passwords still sign in). */
export const PresentedPassword = Type.String({ minLength: 1, maxLength: MAX_PASSWORD_INPUT })

export const Role = Type.Union([Type.Literal('user'), Type.Literal('admin')], {
  'x-message': 'must be "user" or "admin"',
})
export type Role = Static<typeof Role>

/** The user every example shows. */
export const EXAMPLE_USER = {
  id: '0b6f3a52-8c1d-4e7a-9f25-6d3c2b1a0e94',
  username: 'alice',
  email: 'alice@example.com',
  role: 'user',
  emailVerified: true,
  createdAt: '2025-01-31T09:30:00.000Z',
}

/** The only user fields that ever leave the service: the response schema is the allowlist. */
export const PublicUser = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    username: Type.String(),
    email: Type.String(),
    role: Role,
    emailVerified: Type.Boolean({
      description: 'Whether the address was confirmed through a link sent to it.',
    }),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'User', additionalProperties: false, examples: [EXAMPLE_USER] },
)
export type PublicUser = Static<typeof PublicUser>

export const registerBody = (minLength: number) =>
  Type.Object(
    { username: Username, email: Email, password: newPassword(minLength) },
    {
      additionalProperties: false,
      examples: [{ username: 'alice', email: 'alice@example.com', password: 'Sturdy-Pebble-Canyon-12' }],
    },
  )
export type RegisterBody = Static<ReturnType<typeof registerBody>>

export const LoginBody = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 254 }),
    password: PresentedPassword,
  },
  { additionalProperties: false, examples: [{ username: 'alice', password: 'Sturdy-Pebble-Canyon-12' }] },
)
export type LoginBody = Static<typeof LoginBody>

export const UserEnvelope = Type.Object(
  { user: ref(PublicUser) },
  { $id: 'UserEnvelope', examples: [{ user: EXAMPLE_USER }] },
)

const EXAMPLE_TOKEN = {
  accessToken: 'eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.…',
  tokenType: 'Bearer',
  expiresIn: 900,
}
const accessToken = Type.String({ description: 'A JWT: send it as `Authorization: Bearer <token>`.' })
const expiresIn = Type.Integer({ description: 'Seconds the access token lives.' })

export const TokenResponse = Type.Object(
  { accessToken, tokenType: Type.Literal('Bearer'), expiresIn },
  { $id: 'AccessToken', examples: [EXAMPLE_TOKEN] },
)

/** A completed sign-in: the access token (also in a cookie) and the user. */
export const SignedIn = Type.Object(
  { accessToken, tokenType: Type.Literal('Bearer'), expiresIn, user: ref(PublicUser) },
  { $id: 'SignedIn', examples: [{ ...EXAMPLE_TOKEN, user: EXAMPLE_USER }] },
)

/** The password was right and the account has a second factor: POST /api/auth/mfa/verify next. */
export const MfaChallenge = Type.Object(
  {
    mfaRequired: Type.Literal(true),
    mfaToken: Type.String({ description: 'Single-use; send it with a code to POST /api/auth/mfa/verify.' }),
    expiresIn: Type.Integer({ description: 'Seconds the mfaToken lives.' }),
  },
  {
    $id: 'MfaChallenge',
    examples: [
      { mfaRequired: true, mfaToken: 'q3Vd8xYb2Lk0N6pWmZr4Ts1Hc9Ue5Ja7Gf2Ei0Do8Bn', expiresIn: 300 },
    ],
  },
)

export const LoginResponse = Type.Union([ref(SignedIn), ref(MfaChallenge)], {
  description: 'Signed in; or, for an account with two-factor authentication, the challenge to answer',
})

export const SessionItem = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    createdAt: Type.String({ format: 'date-time' }),
    lastUsedAt: Type.String({ format: 'date-time' }),
    userAgent: Type.Union([Type.String(), Type.Null()]),
    ip: Type.Union([Type.String(), Type.Null()]),
    current: Type.Boolean({ description: 'The session of this request.' }),
  },
  { $id: 'Session' },
)
export const SessionList = Type.Object(
  { items: Type.Array(ref(SessionItem)) },
  {
    $id: 'SessionList',
    examples: [
      {
        items: [
          {
            id: '5e0c7a3d-2b4f-4a61-8d9e-0f1a2b3c4d5e',
            createdAt: '2025-01-31T09:30:00.000Z',
            lastUsedAt: '2025-01-31T10:05:12.000Z',
            userAgent: 'Mozilla/5.0',
            ip: '203.0.113.7',
            current: true,
          },
        ],
      },
    ],
  },
)

export const SessionParams = IdParams

export const passwordChangeBody = (minLength: number) =>
  Type.Object(
    { currentPassword: PresentedPassword, newPassword: newPassword(minLength) },
    {
      additionalProperties: false,
      examples: [{ currentPassword: 'Sturdy-Pebble-Canyon-12', newPassword: 'Quiet-Marble-Orchard-36' }],
    },
  )
export type PasswordChangeBody = Static<ReturnType<typeof passwordChangeBody>>

/**
 * How a session was authenticated (RFC 8176 values, plus `recovery` for a recovery code): `pwd`,
 * and `otp` or `recovery` with `mfa` when a second factor was used; a passkey is `hwk` (device-bound)
 * or `swk` (synced) with `mfa`, being something you have unlocked by user verification.
 */
export type AuthMethod = 'pwd' | 'otp' | 'recovery' | 'mfa' | 'hwk' | 'swk'

/**
 * Claims of an access token (RFC 8725, RFC 9068: typed, short-lived, audience- and issuer-bound),
 * kept minimal: no role or name a gateway could authorize on while they may be stale for up to a
 * token's lifetime. The service reads both from the database on every request.
 */
export interface AccessClaims {
  sub: string
  sid: string
  /** When the user last proved who they are in this session, seconds since the epoch (OIDC Core §2). */
  auth_time: number
  amr: AuthMethod[]
}

/** The claims of a verified token: ours plus the times the signer sets (RFC 7519 §4.1.4, §4.1.6). */
export type VerifiedClaims = AccessClaims & { iat: number; exp: number }

/** What `npm run cli -- create-user` accepts: registration's rules plus a role. */
export const createUserInput = (minLength: number) =>
  Type.Object(
    { username: Username, email: Email, password: newPassword(minLength), role: Role },
    { additionalProperties: false },
  )
export type CreateUserInput = Static<ReturnType<typeof createUserInput>>
