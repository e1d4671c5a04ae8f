import type { FastifyInstance } from 'fastify'
import { passkeysDisabled } from '../../../../lib/errors.js'
import { passkeysEnabled } from '../../../../lib/webauthn-config.js'

/** Passkeys off (WEBAUTHN_ORIGINS=none): every route in this folder answers 501 before anything else, like mail-disabled. */
export default async function passkeysOn(app: FastifyInstance) {
  app.addHook('onRequest', async function passkeysEnabledCheck() {
    if (!passkeysEnabled(app.config)) throw passkeysDisabled()
  })
}
