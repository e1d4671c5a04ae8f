import { type Static, Type } from '@sinclair/typebox'
import { EXAMPLE_USER, PublicUser, Role } from './auth.js'
import { Page, pageQuery, query, ref, Uuid } from './common.js'

/** The admin API's schemas: users as admins see and change them, and the audit log. */

/** What admins see of a user: the public fields and the disabled flag. */
export const AdminUser = Type.Object(
  { ...PublicUser.properties, disabled: Type.Boolean() },
  {
    $id: 'AdminUser',
    additionalProperties: false,
    examples: [{ ...EXAMPLE_USER, disabled: false }],
  },
)
export type AdminUser = Static<typeof AdminUser>

export const AdminUserQuery = query(
  Type.Object(
    {
      ...pageQuery,
      role: Type.Optional(Role),
      disabled: Type.Optional(Type.Boolean()),
      q: Type.Optional(
        Type.String({
          minLength: 1,
          maxLength: 254,
          description: 'A username or email address to look for.',
        }),
      ),
    },
    { additionalProperties: false },
  ),
)
export type AdminUserQuery = Static<typeof AdminUserQuery>

export const AdminUserPage = Page(ref(AdminUser), 'AdminUserPage')

export const AdminUserPatch = Type.Object(
  { role: Type.Optional(Role), disabled: Type.Optional(Type.Boolean()) },
  { additionalProperties: false, minProperties: 1, examples: [{ role: 'admin' }, { disabled: true }] },
)
export type AdminUserPatch = Static<typeof AdminUserPatch>

export const AuditEventItem = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    event: Type.String(),
    userId: Type.Union([Type.String(), Type.Null()]),
    ip: Type.Union([Type.String(), Type.Null()]),
    userAgent: Type.Union([Type.String(), Type.Null()]),
    requestId: Type.Union([Type.String(), Type.Null()]),
    detail: Type.Record(
      Type.String(),
      Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]),
    ),
    createdAt: Type.String({ format: 'date-time' }),
  },
  {
    $id: 'AuditEvent',
    additionalProperties: false,
    examples: [
      {
        id: '1c9a7e3f-6d2b-4c8a-b5e1-3f7d9a2c4e6b',
        event: 'auth.login.success',
        userId: '0b6f3a52-8c1d-4e7a-9f25-6d3c2b1a0e94',
        ip: '203.0.113.7',
        userAgent: 'Mozilla/5.0',
        requestId: '9f2c4b1e-3d5a-4c2b-8e7f-1a2b3c4d5e6f',
        detail: { sessionId: '5e0c7a3d-2b4f-4a61-8d9e-0f1a2b3c4d5e', amr: 'pwd' },
        createdAt: '2025-01-31T09:30:00.000Z',
      },
    ],
  },
)

export const AuditQuery = query(
  Type.Object(
    {
      ...pageQuery,
      event: Type.Optional(
        Type.String({
          minLength: 1,
          maxLength: 100,
          pattern: '^[a-z0-9_.]+$',
          description: 'One event name.',
        }),
      ),
      userId: Type.Optional(Uuid),
      since: Type.Optional(
        Type.String({ format: 'date-time', maxLength: 40, description: 'Events from this time on.' }),
      ),
    },
    { additionalProperties: false },
  ),
)
export type AuditQuery = Static<typeof AuditQuery>

export const AuditPage = Page(ref(AuditEventItem), 'AuditEventPage')
