import { STATUS_CODES } from 'node:http'

/**
 * The error catalogue: every failure a client may be told about, as a problem type and its data.
 * Services, hooks and plugins throw these; the error plugin (plugins/errors.ts) owns the
 * status line, the problem+json body (RFC 9457) and the headers that belong to each type.
 */

export interface FieldError {
  path: string
  message: string
}

/** Facts a problem carries beyond its words; the error plugin turns them into headers. */
export interface ProblemData {
  /** Seconds until a retry can succeed (Retry-After, RFC 9110 §10.2.3). */
  retryAfterSeconds?: number
  /** The limit that was reached, for our own limiters' RateLimit-* headers. */
  limit?: number
  /** The age in seconds a re-authentication may have (RFC 9470 `max_age`). */
  maxAgeSeconds?: number
  /** The API key scope a route needs (RFC 6750 §3 `scope`). */
  scope?: string
}

/** Problem types: each answers with `urn:bulwark:problem:<type>`; a 404 stays `about:blank`. */
export type ProblemType =
  | 'validation-error'
  | 'unauthenticated'
  | 'invalid-token'
  | 'invalid-credentials'
  | 'invalid-refresh-token'
  | 'forbidden'
  | 'account-disabled'
  | 'invalid-current-password'
  | 'csrf-rejected'
  | 'mfa-required'
  | 'reauthentication-required'
  | 'invalid-mfa-token'
  | 'invalid-mfa-code'
  | 'conflict'
  | 'last-admin'
  | 'rate-limited'
  | 'overloaded'
  | 'not-ready'
  | 'service-unavailable'
  | 'mail-disabled'
  | 'email-not-verified'
  | 'invalid-email-token'
  | 'invalid-passkey'
  | 'passkeys-disabled'
  | 'insufficient-scope'
  | 'api-key-not-allowed'

export class AppError extends Error {
  override name = 'AppError'
  readonly statusCode: number
  readonly type: ProblemType | undefined
  readonly errors: FieldError[] | undefined
  readonly data: ProblemData

  constructor(
    statusCode: number,
    detail: string,
    options: { type?: ProblemType; errors?: FieldError[]; data?: ProblemData } = {},
  ) {
    super(detail)
    this.statusCode = statusCode
    this.type = options.type
    this.errors = options.errors
    this.data = options.data ?? {}
  }
}

export const statusTitle = (status: number): string => STATUS_CODES[status] ?? 'Error'

export const isProblem = (error: unknown, type: ProblemType): error is AppError =>
  error instanceof AppError && error.type === type

/** Absent, or not visible to this caller: the two look the same (OWASP ASVS 8.2.2). */
export const notFound = () => new AppError(404, 'The requested resource does not exist.')

export const forbidden = (
  detail = 'You do not have permission to do this.',
  type:
    | 'forbidden'
    | 'account-disabled'
    | 'invalid-current-password'
    | 'csrf-rejected'
    | 'mfa-required' = 'forbidden',
) => new AppError(403, detail, { type })

export const conflict = (
  detail: string,
  type: 'conflict' | 'last-admin' = 'conflict',
  errors?: FieldError[],
) => new AppError(409, detail, { type, ...(errors ? { errors } : {}) })

/** Fields broke rules that JSON Schema cannot express; reported like schema validation, every rule at once. */
export const invalidFields = (
  errors: FieldError[],
  detail = 'The request is invalid; see errors for each field.',
) => new AppError(400, detail, { type: 'validation-error', errors })

/** One field broke one such rule. */
export const invalidField = (path: string, message: string, detail?: string) =>
  invalidFields([{ path, message }], detail)

/** RFC 6750 §3: a token is needed, or the one sent is bad. */
export const unauthenticated = (tokenSent: boolean) =>
  tokenSent
    ? new AppError(401, 'The access token is invalid or expired.', { type: 'invalid-token' })
    : new AppError(401, 'Authentication is required.', { type: 'unauthenticated' })

export const invalidCredentials = () =>
  new AppError(401, 'Invalid credentials.', { type: 'invalid-credentials' })

/** The session is older than a sensitive action allows: POST /api/auth/reauthenticate first (RFC 9470). */
export const reauthenticationRequired = (maxAgeSeconds: number) =>
  new AppError(
    401,
    `This action needs a sign-in from the last ${maxAgeSeconds} seconds: re-authenticate first.`,
    {
      type: 'reauthentication-required',
      data: { maxAgeSeconds },
    },
  )

/** An unknown, expired, spent or exhausted mfaToken: all look the same. */
export const invalidMfaToken = () =>
  new AppError(401, 'The mfaToken is invalid, expired or used up: sign in again.', {
    type: 'invalid-mfa-token',
  })

export const invalidMfaCode = (detail = 'The two-factor code is wrong or was already used.') =>
  new AppError(401, detail, { type: 'invalid-mfa-code' })

/** An unknown, expired, used or wrong-purpose mailed token: all look the same (OWASP ASVS 5.0 6.3.8). */
export const invalidEmailToken = () =>
  new AppError(400, 'The link is invalid, expired or already used: ask for a new one.', {
    type: 'invalid-email-token',
  })

/** REQUIRE_VERIFIED_EMAIL=true and the account's address is not confirmed yet; told only after a correct password. */
export const emailNotVerified = (detail: string) => new AppError(403, detail, { type: 'email-not-verified' })

/** Any refresh failure looks the same to the client. */
export const invalidRefreshToken = () =>
  new AppError(401, 'The refresh token is invalid, expired or revoked.', { type: 'invalid-refresh-token' })

export const rateLimited = (
  detail = 'Too many requests. Try again later.',
  limit?: { max: number; resetMs: number },
) =>
  new AppError(429, detail, {
    type: 'rate-limited',
    ...(limit
      ? { data: { limit: limit.max, retryAfterSeconds: Math.max(1, Math.ceil(limit.resetMs / 1000)) } }
      : {}),
  })

export const unavailable = (
  type: 'overloaded' | 'not-ready' | 'service-unavailable',
  detail: string,
  retryAfterSeconds: number,
) => new AppError(503, detail, { type, data: { retryAfterSeconds } })

/** Any failed passkey ceremony looks the same to the client; the reason goes to the audit log (ASVS 5.0 6.3.8). */
export const invalidPasskey = () =>
  new AppError(401, 'The passkey could not be verified: start again.', { type: 'invalid-passkey' })

/** WEBAUTHN_ORIGINS is `none` (or unset in production): the passkey routes are off. */
export const passkeysDisabled = () =>
  new AppError(501, 'Passkeys are disabled on this service (WEBAUTHN_ORIGINS).', {
    type: 'passkeys-disabled',
  })

// API keys (issue 16): the key is good, but not for this route.
/** RFC 6750 §3.1 insufficient_scope: the key lacks the scope the route needs. */
export const insufficientScope = (scope: string) =>
  new AppError(403, `This API key lacks the scope this route needs: ${scope}.`, {
    type: 'insufficient-scope',
    data: { scope },
  })

/** The route accepts no API key at all (sign-in, sessions, passwords, two-factor, key management). */
export const apiKeyNotAllowed = () =>
  new AppError(403, 'API keys are not accepted here: sign in and use a session.', {
    type: 'api-key-not-allowed',
  })
