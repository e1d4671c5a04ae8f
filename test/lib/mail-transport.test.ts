import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { networkInterfaces, tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { simpleParser } from 'mailparser'
import t from 'tap'
import { createMailTransport } from '../../lib/mail-transport.js'
import { insertMail } from '../../repositories/outbox.js'
import {
  build,
  logCapture,
  OTHER_PASSWORD,
  signUp,
  skipUnlessCI,
  startSmtpServer,
  TEST_PASSWORD,
  waitUntil,
} from '../helper.js'
import { makeCertificates } from './db-tls-certs.js'

/** Where mail goes: .eml files without SMTP_URL, and SMTP over STARTTLS with verified certificates. */

t.test(
  'no SMTP_URL outside production: each mail is an owner-only .eml file that one log line names',
  async (t) => {
    const dir = join(mkdtempSync(join(tmpdir(), 'bulwark-eml-')), 'mail')
    t.teardown(() => execFileSync('rm', ['-rf', join(dir, '..')]))
    const logs = logCapture()
    const app = await build(t, {
      env: { MAIL_DIR: dir, MAIL_POLL_INTERVAL_MS: '50' },
      logStream: logs.stream,
    })
    t.equal(app.mail.transport, 'file')
    const user = await signUp(app, 'emlfile')
    const change = await user.inject({
      method: 'PUT',
      url: '/api/users/me/password',
      payload: { currentPassword: TEST_PASSWORD, newPassword: OTHER_PASSWORD },
    })
    t.equal(change.statusCode, 204)
    // Two mails: the registration's verification link, then the notice of the password change.
    await waitUntil('the files are written', () => {
      try {
        return readdirSync(dir).filter((f) => f.endsWith('.eml')).length === 2
      } catch {
        return false
      }
    })
    t.same(
      readdirSync(dir).filter((f) => !f.endsWith('.eml')),
      [],
      'no partial file is left once both are written',
    )
    const name = readdirSync(dir).find((f) => f.includes('-password-changed-')) ?? ''
    const file = join(dir, name)
    t.match(name, /^[\dTZ-]+-password-changed-[0-9a-f-]{36}\.eml$/, 'time, template and outbox id')
    t.equal(statSync(file).mode & 0o777, 0o600, 'the file is the owner’s only')
    t.equal(statSync(dir).mode & 0o777, 0o700, 'so is the directory')
    const parsed = await simpleParser(readFileSync(file))
    t.match(parsed.subject, /Your password was changed/)
    t.match(parsed.text, `Hello ${user.username},`)
    const email = `${user.username}@example.com`
    t.match(JSON.stringify(parsed.to), email)

    await waitUntil('the line is logged', () => logs.raw.some((line) => line.includes(file)))
    const naming = logs.lines.filter((line) => JSON.stringify(line).includes(name))
    t.equal(naming.length, 1, 'exactly one log line names the file')
    t.match(naming[0], { event: 'mail.written', file, msg: `mail written to ${file}` })
    t.notOk(
      logs.raw.some((line) => line.includes(email)),
      'no log line holds the address',
    )
  },
)

/** An IPv4 address of this machine that is not loopback, if it has one. */
function nonLoopbackAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  }
  return undefined
}

const config = (url: string, NODE_ENV: 'production' | 'test' = 'test') => ({
  SMTP_URL: url,
  MAIL_FROM: 'Bulwark <bulwark@localhost>',
  MAIL_DIR: tmpdir(),
  MAIL_DISABLED: false,
  NODE_ENV,
})
const outgoing = () => ({
  id: randomUUID(),
  template: 'password-changed',
  to: 'tls@example.com',
  subject: 'over TLS',
  text: 'hello',
  html: '<p>hello</p>',
})

const remote = nonLoopbackAddress()
t.test(
  'production refuses plain SMTP to a remote server that offers no STARTTLS',
  { skip: remote ? false : 'this machine has no non-loopback address' },
  async (t) => {
    const smtp = await startSmtpServer(t, { host: remote })
    const url = smtp.env.SMTP_URL
    const production = createMailTransport(config(url, 'production'))
    t.teardown(() => production?.close())
    await t.rejects(
      async () => {
        await production?.send(outgoing())
      },
      { code: 'ETLS' },
      'never sent in the clear',
    )
    t.equal(smtp.mails.length, 0)
    // The same server from a development setting: opportunistic STARTTLS, so plain text is allowed.
    const development = createMailTransport(config(url))
    t.teardown(() => development?.close())
    await development?.send(outgoing())
    t.equal(smtp.mails.length, 1)
    t.equal(smtp.mails[0]?.secure, false)
  },
)

let noOpenssl: string | false = false
try {
  execFileSync('openssl', ['version'], { stdio: 'ignore' })
} catch {
  noOpenssl = 'the openssl command is not installed'
}
const skip = skipUnlessCI(noOpenssl)

t.test(
  'smtp:// upgrades with STARTTLS when offered, and never to a certificate it cannot verify',
  { skip },
  async (t) => {
    const files = makeCertificates(mkdtempSync(join(tmpdir(), 'bulwark-smtp-tls-')))
    const smtp = await startSmtpServer(t, {
      tls: { cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8') },
    })
    const app = await build(t, { env: { ...smtp.env, MAIL_RETRY_BASE_MS: '60000' } })
    const untrusted = randomUUID()
    await insertMail(app.sql, app.cipher, {
      id: untrusted,
      template: 'password-changed',
      userId: null,
      recipient: 'untrusted@example.com',
      payload: { username: 'tls' },
    })
    await waitUntil('the attempt failed', async () => {
      const [row] = await app.sql<
        { lastError: string | null }[]
      >`select last_error from outbox where id = ${untrusted}`
      return Boolean(row?.lastError)
    })
    const [row] = await app.sql<
      { lastError: string }[]
    >`select last_error from outbox where id = ${untrusted}`
    t.match(row?.lastError, /^E[A-Z]+/, `a private CA nobody trusts: refused (${row?.lastError})`)
    t.equal(smtp.mails.length, 0, 'and not sent in the clear instead')

    if (typeof tls.setDefaultCACertificates !== 'function') {
      t.comment('the trusted half needs tls.setDefaultCACertificates (Node 22.19 or 24.5)')
      return
    }
    // Trusted from here on, as a relay's certificate from a public CA would be.
    tls.setDefaultCACertificates([...tls.getCACertificates('default'), readFileSync(files.ca, 'utf8')])
    await insertMail(app.sql, app.cipher, {
      id: randomUUID(),
      template: 'password-changed',
      userId: null,
      recipient: 'trusted@example.com',
      payload: { username: 'tls' },
    })
    const mail = await smtp.waitForMail('trusted@example.com')
    t.equal(mail.secure, true, 'the mail came over TLS (STARTTLS on smtp://)')
    t.equal(smtp.mails.length, 1, 'the refused one waits for its retry')
  },
)
