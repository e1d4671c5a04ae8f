import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { createMailTransport } from '../../lib/mail-transport.js'
import { createAudit } from '../../services/audit.js'
import { type OutboxWorker, startOutboxWorker } from '../../services/outbox.js'

/** Mail: the transport the settings choose, and the outbox worker, started when the app is ready. */

declare module 'fastify' {
  interface FastifyInstance {
    mail: {
      /** smtp, file (.eml in MAIL_DIR), or null when MAIL_DISABLED=true. */
      transport: 'smtp' | 'file' | null
      /** The running worker (null until ready, and when mail is disabled). */
      worker: OutboxWorker | null
    }
  }
}

async function mailPlugin(app: FastifyInstance) {
  const transport = createMailTransport(app.config)
  const mail: FastifyInstance['mail'] = { transport: transport?.kind ?? null, worker: null }
  app.decorate('mail', mail)
  if (!transport) {
    app.log.info({ event: 'mail.disabled' }, 'mail is disabled: verification, reset and notices are off')
    return
  }
  if (transport.kind === 'file') {
    app.log.info(
      { event: 'mail.file_transport', dir: app.config.MAIL_DIR },
      `mail is written to ${app.config.MAIL_DIR} (no SMTP_URL)`,
    )
  }
  app.addHook('onReady', async function startOutbox() {
    const audit = createAudit(
      app.sql,
      app.cipher,
      app.log,
      { ip: null, userAgent: null, requestId: null },
      app.metrics?.securityEvent,
    )
    mail.worker = startOutboxWorker({
      sql: app.sql,
      cipher: app.cipher,
      transport,
      config: app.config,
      log: app.log,
      audit,
    })
  })
  app.addHook('onClose', async function stopOutbox() {
    await mail.worker?.stop()
    transport.close()
  })
}

export default fp(mailPlugin, { name: 'mail', dependencies: ['config', 'db', 'metrics'] })
