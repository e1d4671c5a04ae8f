import { type Static, Type } from '@sinclair/typebox'
import { PublicUser, Username } from './auth.js'

/** Schemas of user profiles. */

export const UsernameParams = Type.Object({ username: Username }, { additionalProperties: false })

/** A profile as other users see it; `email` only for the user themself or an admin. */
export const Profile = Type.Object(
  { ...PublicUser.properties, email: Type.Optional(Type.String()) },
  { additionalProperties: false },
)
export type Profile = Static<typeof Profile>
