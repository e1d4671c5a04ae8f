import type { ChildProcess } from 'node:child_process'
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, writeFileSync } from 'node:fs'
import { type AddressInfo, createServer } from 'node:net'
import { join } from 'node:path'

/** Test certificates made with the openssl command line: a private CA, its server certificate, a stranger CA. */

export interface TlsFiles {
  /** The CA that issued the server certificate (PEM). */
  ca: string
  /** A CA that issued nothing here: trusting it alone must refuse the server. */
  otherCa: string
  /** Server certificate for DNS:localhost and IP:127.0.0.1 only, and its key (mode 0600). */
  cert: string
  key: string
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

/** Writes the certificates into `dir` (P-256 keys: quick to make). Valid for one day. */
export function makeCertificates(dir: string): TlsFiles {
  const openssl = (...args: string[]) =>
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
  for (const name of ['ca', 'other-ca']) {
    openssl(
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-days',
      '1',
      '-subj',
      `/CN=bulwark test ${name}`,
    )
  }
  writeFileSync(
    join(dir, 'server.ext'),
    [
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
      '',
    ].join('\n'),
  )
  openssl('req', '-new', ...EC_KEY, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost')
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    'server.ext',
    '-out',
    'server.pem',
  )
  // PostgreSQL refuses a private key that others may read.
  chmodSync(join(dir, 'server.key'), 0o600)
  return {
    ca: join(dir, 'ca.pem'),
    otherCa: join(dir, 'other-ca.pem'),
    cert: join(dir, 'server.pem'),
    key: join(dir, 'server.key'),
  }
}

/** Waits until a child process prints `ready` on `stream`; rejects if it exits or takes longer than `ms`. */
export function waitForOutput(
  child: ChildProcess,
  stream: 'stdout' | 'stderr',
  ready: string,
  ms: number,
  name: string,
): Promise<void> {
  let log = ''
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start in ${ms} ms: ${log}`)), ms)
    child[stream]?.on('data', (chunk: Buffer) => {
      log += chunk.toString()
      if (log.includes(ready)) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', () => {
      clearTimeout(timer)
      reject(new Error(`${name} exited at start: ${log}`))
    })
  })
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  server.close()
  await once(server, 'close')
  return port
}
