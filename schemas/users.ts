import { type Static, Type } from '@sinclair/typebox'
import { EXAMPLE_USER, PublicUser, Username } from './auth.js'

/** Schemas of user profiles. */

export const UsernameParams = Type.Object({ username: Username }, { additionalProperties: false })

const { email: _, emailVerified: __, ...otherUser } = EXAMPLE_USER

/** A profile as other users see it; `email` only for the user themself or an admin. */
export const Profile = Type.Object(
  {
    ...PublicUser.properties,
    email: Type.Optional(Type.String({ description: 'Only in your own profile, or for admins.' })),
    emailVerified: Type.Optional(Type.Boolean({ description: 'Only with `email`.' })),
  },
  { $id: 'Profile', additionalProperties: false, examples: [otherUser] },
)
export type Profile = Static<typeof Profile>
