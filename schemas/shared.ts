import { AdminUser, AdminUserPage, AuditEventItem, AuditPage } from './admin.js'
import {
  MfaChallenge,
  PublicUser,
  SessionItem,
  SessionList,
  SignedIn,
  TokenResponse,
  UserEnvelope,
} from './auth.js'
import { Comment, CommentInput, CommentPage } from './comments.js'
import { ProblemSchema, StatusOkSchema } from './common.js'
import { LinkMailed } from './email.js'
import { MfaStatus, RecoveryCodes, TotpEnrolment } from './mfa.js'
import { PASSKEY_SCHEMAS } from './passkeys.js'
import { Profile } from './users.js'

/**
 * The schemas registered once (plugins/app/shared-schemas.ts) and referenced with ref(): they are
 * components.schemas of the OpenAPI document, so generated clients get one named type for each.
 */
export const SHARED_SCHEMAS = [
  ProblemSchema,
  StatusOkSchema,
  PublicUser,
  UserEnvelope,
  Profile,
  TokenResponse,
  SignedIn,
  MfaChallenge,
  SessionItem,
  SessionList,
  MfaStatus,
  TotpEnrolment,
  RecoveryCodes,
  LinkMailed,
  Comment,
  CommentInput,
  CommentPage,
  AdminUser,
  AdminUserPage,
  AuditEventItem,
  AuditPage,
  ...PASSKEY_SCHEMAS,
]
