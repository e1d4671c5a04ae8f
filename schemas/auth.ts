import { type Static, Type } from '@sinclair/typebox'
import { IdParams } from './common.js'

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

/** Password rules (OWASP ASVS 6.2): each failing rule is reported on its own. 72 bytes is checked in services/passwords.ts. */
export const NewPassword = Type.Intersect([
  Type.String({ minLength: 8, 'x-message': 'must be at least 8 characters' }),
  Type.String({ maxLength: 72, 'x-max-bytes': 72, 'x-message': 'must be at most 72 bytes in UTF-8' }),
  Type.String({ pattern: '[0-9]', 'x-message': 'must contain a digit' }),
  Type.String({ pattern: '[A-Z]', 'x-message': 'must contain an upper-case letter' }),
])

export const Role = Type.Union([Type.Literal('user'), Type.Literal('admin')], {
  'x-message': 'must be "user" or "admin"',
})
export type Role = Static<typeof Role>

/** The only user fields that ever leave the service: the response schema is the allowlist. */
export const PublicUser = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    username: Type.String(),
    email: Type.String(),
    role: Role,
    createdAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
)
export type PublicUser = Static<typeof PublicUser>

export const RegisterBody = Type.Object(
  { username: Username, email: Email, password: NewPassword },
  { additionalProperties: false },
)
export type RegisterBody = Static<typeof RegisterBody>

export const LoginBody = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 254 }),
    password: Type.String({ minLength: 1, maxLength: 256 }),
  },
  { additionalProperties: false },
)
export type LoginBody = Static<typeof LoginBody>

export const UserEnvelope = Type.Object({ user: PublicUser })

export const TokenResponse = Type.Object({
  accessToken: Type.String(),
  tokenType: Type.Literal('Bearer'),
  expiresIn: Type.Integer(),
})

export const LoginResponse = Type.Object({
  accessToken: Type.String(),
  tokenType: Type.Literal('Bearer'),
  expiresIn: Type.Integer(),
  user: PublicUser,
})

export const SessionItem = Type.Object({
  id: Type.String({ format: 'uuid' }),
  createdAt: Type.String({ format: 'date-time' }),
  lastUsedAt: Type.String({ format: 'date-time' }),
  userAgent: Type.Union([Type.String(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  current: Type.Boolean(),
})
export const SessionList = Type.Object({ items: Type.Array(SessionItem) })

export const SessionParams = IdParams

export const PasswordChangeBody = Type.Object(
  { currentPassword: Type.String({ minLength: 1, maxLength: 256 }), newPassword: NewPassword },
  { additionalProperties: false },
)
export type PasswordChangeBody = Static<typeof PasswordChangeBody>

/** Claims of an access token (RFC 8725: typed, short-lived, audience- and issuer-bound). */
export interface AccessClaims {
  sub: string
  username: string
  role: Role
  sid: string
}

/** What `npm run cli -- create-user` accepts: registration's rules plus a role. */
export const CreateUserInput = Type.Object(
  { username: Username, email: Email, password: NewPassword, role: Role },
  { additionalProperties: false },
)
export type CreateUserInput = Static<typeof CreateUserInput>
