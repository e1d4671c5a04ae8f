import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { createFieldCipher, type FieldCipher } from '../lib/field-crypto.js'
import { type JwtKeys, jwtKeys } from '../lib/jwt-keys.js'
import type { Config } from '../schemas/env.js'

/**
 * The settings, registered first by app.ts, and the values derived from them, computed once for
 * every reader (the external plugins read them in autoConfig, before plugins/app loads).
 */

declare module 'fastify' {
  interface FastifyInstance {
    config: Readonly<Config>
    /** The signing key and the verification keys by kid (JWT plugin, authentication, JWKS). */
    jwtKeys: JwtKeys
    /** Field encryption and blind indexes under DATA_ENCRYPTION_KEYS / DATA_INDEX_KEY. */
    cipher: FieldCipher
  }
}

async function configPlugin(app: FastifyInstance, opts: { config: Config }) {
  app.decorate('config', opts.config)
  app.decorate('jwtKeys', jwtKeys(opts.config))
  app.decorate('cipher', createFieldCipher(opts.config))
}

export default fp(configPlugin, { name: 'config' })
