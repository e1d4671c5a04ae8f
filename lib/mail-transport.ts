import { mkdir, rename, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import nodemailer from 'nodemailer'
import type { Config } from '../schemas/env.js'
import { isLocalHost } from './db-tls.js'

/** Where mail goes: an SMTP server (SMTP_URL), or .eml files in MAIL_DIR for development. */

export interface OutgoingMail {
  /** The outbox row's id: the Message-ID, so a receiver can tell a resend of one row apart. */
  id: string
  template: string
  to: string
  subject: string
  text: string
  html: string
}

export interface MailTransport {
  readonly kind: 'smtp' | 'file'
  /** Resolves once the server accepted the message (or the file is written); `file` names the file. */
  send(mail: OutgoingMail): Promise<{ file?: string }>
  close(): void
}

/** Bounds on every SMTP wait, so one send ends well within the outbox lease (services/outbox.ts). */
export const SMTP_TIMEOUTS = { connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000 }

/** The domain of MAIL_FROM, for Message-IDs (RFC 5322 §3.6.4). */
function fromDomain(from: string): string {
  return /@([^>\s]+)>?\s*$/.exec(from)?.[1] ?? 'localhost'
}

/**
 * An SMTP answer that no retry will change: the server refused the envelope (sender or recipient)
 * or the message itself with a 5xx (RFC 5321 §4.2.1). Connection, authentication and 4xx failures
 * are retried.
 */
export function isPermanentFailure(error: unknown): boolean {
  const e = error as { code?: string; responseCode?: number }
  const refused = e.code === 'EENVELOPE' || e.code === 'EMESSAGE'
  return refused && typeof e.responseCode === 'number' && e.responseCode >= 500
}

function message(config: Pick<Config, 'MAIL_FROM'>, mail: OutgoingMail) {
  return {
    from: config.MAIL_FROM,
    to: mail.to,
    subject: mail.subject,
    text: mail.text,
    html: mail.html,
    messageId: `<${mail.id}@${fromDomain(config.MAIL_FROM)}>`,
  }
}

/**
 * SMTP through nodemailer: smtps:// is TLS from the first byte, smtp:// upgrades with STARTTLS when
 * the server offers it, and must in production unless the server is on this host (ASVS 5.0 12.3.1).
 * Certificates are always verified.
 */
function smtpTransport(
  config: Pick<Config, 'SMTP_URL' | 'MAIL_FROM' | 'NODE_ENV'>,
  url: string,
): MailTransport {
  const parsed = new URL(url)
  const requireTLS =
    parsed.protocol === 'smtp:' && config.NODE_ENV === 'production' && !isLocalHost(parsed.hostname)
  const transport = nodemailer.createTransport({
    url,
    ...SMTP_TIMEOUTS,
    requireTLS,
    tls: { rejectUnauthorized: true },
  })
  return {
    kind: 'smtp',
    async send(mail) {
      await transport.sendMail(message(config, mail))
      return {}
    },
    close: () => transport.close(),
  }
}

/** Development without SMTP: each mail becomes an .eml file (owner-only) that any mail client opens. */
function fileTransport(config: Pick<Config, 'MAIL_DIR' | 'MAIL_FROM'>): MailTransport {
  const dir = resolve(config.MAIL_DIR)
  const composer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' })
  return {
    kind: 'file',
    async send(mail) {
      const info = await composer.sendMail(message(config, mail))
      await mkdir(dir, { recursive: true, mode: 0o700 })
      const stamp = new Date().toISOString().replace(/[:.]/g, '-')
      const file = join(dir, `${stamp}-${mail.template}-${mail.id}.eml`)
      // Written under a name no reader looks for, then renamed: a mail appears whole or not at all
      // (a reader of the folder saw an empty file while it was being written).
      const partial = `${file}.partial`
      await writeFile(partial, info.message as Buffer, { mode: 0o600 })
      await rename(partial, file)
      return { file }
    },
    close: () => composer.close(),
  }
}

/** The transport the settings choose; null when mail is disabled. */
export function createMailTransport(
  config: Pick<Config, 'SMTP_URL' | 'MAIL_FROM' | 'MAIL_DIR' | 'MAIL_DISABLED' | 'NODE_ENV'>,
): MailTransport | null {
  if (config.MAIL_DISABLED) return null
  return config.SMTP_URL ? smtpTransport(config, config.SMTP_URL) : fileTransport(config)
}
