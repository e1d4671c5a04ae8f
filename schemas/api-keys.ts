import { type Static, Type } from '@sinclair/typebox'

/** Schemas of scoped API keys for machine clients (`Authorization: Bearer bwk_<id>_<secret>`). */

export const API_KEY_SCOPES = ['comments:read', 'comments:write', 'profile:read', 'admin'] as const
export const ApiKeyScope = Type.Union(
  API_KEY_SCOPES.map((s) => Type.Literal(s)),
  { 'x-message': `must be one of ${API_KEY_SCOPES.join(', ')}` },
)
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number]

/** A key's public id: 16 lowercase hex characters (64 random bits), never `_`. */
export const ApiKeyId = Type.String({ pattern: '^[0-9a-f]{16}$', 'x-message': 'must be an API key id' })
export const ApiKeyParams = Type.Object({ id: ApiKeyId }, { additionalProperties: false })

/** Expiry when the body names none, in days. */
export const DEFAULT_EXPIRES_DAYS = 90

export const createApiKeyBody = (maxDays: number) =>
  Type.Object(
    {
      name: Type.String({
        minLength: 1,
        maxLength: 64,
        // Printable, with no control characters; trimmed by the service (and refused when empty then).
        pattern: '^[^\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}]+$',
        'x-message': 'must be 1–64 printable characters',
      }),
      scopes: Type.Array(ApiKeyScope, { minItems: 1, maxItems: API_KEY_SCOPES.length, uniqueItems: true }),
      expiresInDays: Type.Optional(
        Type.Integer({
          minimum: 1,
          maximum: maxDays,
          default: Math.min(DEFAULT_EXPIRES_DAYS, maxDays),
          description: `Days until the key expires (default ${DEFAULT_EXPIRES_DAYS}, at most ${maxDays}).`,
        }),
      ),
    },
    {
      additionalProperties: false,
      examples: [{ name: 'ci-bot', scopes: ['comments:read', 'comments:write'], expiresInDays: 30 }],
    },
  )
export type CreateApiKeyBody = Static<ReturnType<typeof createApiKeyBody>>

const date = Type.String({ format: 'date-time' })
const EXAMPLE = {
  id: '3f9a1c0b7e2d4a68',
  name: 'ci-bot',
  prefix: 'bwk_3f9a1c0b7e2d4a68',
  scopes: ['comments:read', 'comments:write'],
  createdAt: '2025-01-31T09:30:00.000Z',
  expiresAt: '2025-03-02T09:30:00.000Z',
}

export const ApiKeyItem = Type.Object(
  {
    id: ApiKeyId,
    name: Type.String(),
    prefix: Type.String({ description: '`bwk_<id>`: recognises the key; never its secret.' }),
    scopes: Type.Array(ApiKeyScope),
    createdAt: date,
    expiresAt: date,
    lastUsedAt: Type.Union([date, Type.Null()], {
      description: 'Written in batches: up to API_KEY_LAST_USED_FLUSH_MS behind.',
    }),
  },
  { additionalProperties: false },
)
export type ApiKeyItem = Static<typeof ApiKeyItem>

export const ApiKeyList = Type.Object(
  { items: Type.Array(ApiKeyItem) },
  { examples: [{ items: [{ ...EXAMPLE, lastUsedAt: null }] }] },
)

export const CreatedApiKey = Type.Object(
  {
    id: ApiKeyId,
    name: Type.String(),
    prefix: Type.String(),
    scopes: Type.Array(ApiKeyScope),
    createdAt: date,
    expiresAt: date,
    key: Type.String({
      pattern: '^bwk_[0-9a-f]{16}_[0-9a-f]{64}$',
      description: 'The key, shown this once: send it as `Authorization: Bearer <key>`.',
    }),
  },
  { examples: [{ ...EXAMPLE, key: `bwk_3f9a1c0b7e2d4a68_${'0c'.repeat(32)}` }] },
)
export type CreatedApiKey = Static<typeof CreatedApiKey>

/**
 * The OpenAPI security of a route that also accepts a key holding `scope` (OpenAPI 3.1 lets any scheme
 * list the scopes it needs): `base` (a session, or `[{}]` for a public route) or the `apiKey` scheme.
 */
export const orApiKey = (
  scope: ApiKeyScope,
  base: Record<string, string[]>[],
): Record<string, string[]>[] => [...base, { apiKey: [scope] }]
