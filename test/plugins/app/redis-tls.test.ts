import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { TLSSocket } from 'node:tls'
import { Redis } from 'ioredis'
import t from 'tap'
import { redisTls } from '../../../lib/db-tls.js'
import { build, logCapture, skipUnlessCI } from '../../helper.js'
import { freePort, makeCertificates, type TlsFiles, waitForOutput } from '../../lib/db-tls-certs.js'

/**
 * rediss:// with REDIS_CA_FILE against a real TLS-only redis-server: the app's connection is TLS and
 * checked against the private CA; a wrong CA or a host name not in the certificate is refused.
 */

const noRedisServer = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).error
  ? 'redis-server is not installed; install it to run this test'
  : false
const noOpenssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).error
  ? 'the openssl command is not installed'
  : false
const skip = skipUnlessCI(noRedisServer || noOpenssl)
/** OpenSSL's verdicts on a chain that leads to no trusted CA (redis-server also sends its CA, hence self-signed). */
const UNTRUSTED = {
  code: /^(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/,
  message:
    /self-signed certificate in certificate chain|unable to verify the first certificate|unable to get local issuer/,
}

interface TlsRedis {
  port: number
  files: TlsFiles
}

/** A TLS-only redis-server (plaintext port 0) on 127.0.0.1 and 127.0.0.2; stopped and removed when the file ends. */
async function startTlsRedis(): Promise<TlsRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-redis-tls-'))
  let child: ChildProcess | undefined
  t.teardown(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  })
  const files = makeCertificates(dir)
  const port = await freePort()
  const args = {
    port: '0',
    'tls-port': String(port),
    bind: '127.0.0.1 127.0.0.2',
    'tls-cert-file': files.cert,
    'tls-key-file': files.key,
    'tls-ca-cert-file': files.ca,
    'tls-auth-clients': 'no',
    save: '',
    appendonly: 'no',
  }
  child = spawn(
    'redis-server',
    Object.entries(args).flatMap(([k, v]) => [`--${k}`, v]),
    {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  )
  await waitForOutput(
    child,
    'stdout',
    'Ready to accept connections',
    5000,
    'redis-server (built without TLS?)',
  )
  child.stdout?.resume()
  return { port, files }
}

let redis: TlsRedis | undefined
t.before(async () => {
  if (!skip) redis = await startTlsRedis()
})

/** Connects a bare ioredis client with the options the app would use; resolves to its TLS socket. */
async function connectDirect(url: string, caFile: string): Promise<TLSSocket> {
  const client = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    tls: redisTls(url, caFile),
  })
  // connect() itself only says "Connection is closed"; the TLS verdict arrives as an error event.
  const errors: Error[] = []
  client.on('error', (error: Error) => errors.push(error))
  try {
    await client.connect()
    return (client as unknown as { stream: TLSSocket }).stream
  } catch (error) {
    throw errors[0] ?? error
  } finally {
    client.disconnect()
  }
}

t.test(
  'rediss:// with REDIS_CA_FILE: the counters connection is TLS, checked against the CA',
  { skip },
  async (t) => {
    const { port, files } = redis as TlsRedis
    const app = await build(t, { env: { REDIS_URL: `rediss://127.0.0.1:${port}`, REDIS_CA_FILE: files.ca } })
    const client = app.redis as Redis
    const deadline = Date.now() + 5000
    while (client.status !== 'ready' && Date.now() < deadline) await sleep(20)
    t.equal(client.status, 'ready')
    t.equal(await client.ping(), 'PONG')
    const stream = (client as unknown as { stream: TLSSocket }).stream
    t.equal(stream.encrypted, true, 'the socket is TLS')
    t.equal(stream.authorized, true, 'and the server certificate was verified')
  },
)

t.test('a CA that did not issue the certificate is refused, and the app says so', { skip }, async (t) => {
  const { port, files } = redis as TlsRedis
  const url = `rediss://127.0.0.1:${port}`
  await t.rejects(connectDirect(url, files.otherCa), {
    code: UNTRUSTED.code,
  })
  const capture = logCapture()
  const app = await build(t, {
    env: { REDIS_URL: url, REDIS_CA_FILE: files.otherCa, LOG_LEVEL: 'warn' },
    logStream: capture.stream,
  })
  const deadline = Date.now() + 5000
  const refused = () => capture.lines.find((line) => line.event === 'redis.unavailable')
  while (!refused() && Date.now() < deadline) await sleep(20)
  t.match(refused(), {
    err: { message: UNTRUSTED.message },
  })
  t.not(app.redis?.status, 'ready')
})

t.test('a host name not in the certificate is refused', { skip }, async (t) => {
  const { port, files } = redis as TlsRedis
  // 127.0.0.2 reaches the same server but is not among the certificate's names.
  await t.rejects(connectDirect(`rediss://127.0.0.2:${port}`, files.ca), {
    code: 'ERR_TLS_CERT_ALTNAME_INVALID',
  })
  t.equal((await connectDirect(`rediss://127.0.0.1:${port}`, files.ca)).authorized, true)
})
