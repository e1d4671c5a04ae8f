import { type Static, Type } from '@sinclair/typebox'
import { PublicUser, Role } from './auth.js'
import { Page, pageQuery, Uuid } from './common.js'

/** The admin API's schemas: users as admins see and change them, and the audit log. */

/** What admins see of a user: the public fields and the disabled flag. */
export const AdminUser = Type.Object(
  { ...PublicUser.properties, disabled: Type.Boolean() },
  { additionalProperties: false },
)
export type AdminUser = Static<typeof AdminUser>

export const AdminUserQuery = Type.Object(
  {
    ...pageQuery,
    role: Type.Optional(Role),
    disabled: Type.Optional(Type.Boolean()),
    q: Type.Optional(Type.String({ minLength: 1, maxLength: 254 })),
  },
  { additionalProperties: false },
)
export type AdminUserQuery = Static<typeof AdminUserQuery>

export const AdminUserPage = Page(AdminUser)

export const AdminUserPatch = Type.Object(
  { role: Type.Optional(Role), disabled: Type.Optional(Type.Boolean()) },
  { additionalProperties: false, minProperties: 1 },
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
  { additionalProperties: false },
)

export const AuditQuery = Type.Object(
  {
    ...pageQuery,
    event: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '^[a-z0-9_.]+$' })),
    userId: Type.Optional(Uuid),
    since: Type.Optional(Type.String({ format: 'date-time', maxLength: 40 })),
  },
  { additionalProperties: false },
)
export type AuditQuery = Static<typeof AuditQuery>

export const AuditPage = Page(AuditEventItem)
