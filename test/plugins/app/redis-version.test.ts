import { once } from 'node:events'
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { MIN_REDIS_VERSION, versionSupported } from '../../../plugins/app/redis.js'
import { build, logCapture } from '../../helper.js'

/**
 * The service needs Redis 7.0 (`PEXPIRE … NX`): an older server is refused at boot with one clear
 * line, and one met later (Redis down at boot, or a failover) is reported in the log. The old
 * server is a stand-in speaking the Redis protocol, since no Redis 6 is installed here.
 */

/** Reads RESP command arrays (`*N` then N bulk strings) off a socket and answers each. */
function answerCommands(socket: Socket, answer: (command: string[]) => string) {
  let buffer = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk])
    for (;;) {
      const parsed = parseCommand(buffer)
      if (!parsed) return
      buffer = buffer.subarray(parsed.length)
      socket.write(answer(parsed.command))
    }
  })
  socket.on('error', () => {})
}

function parseCommand(buffer: Buffer): { command: string[]; length: number } | null {
  const text = buffer.toString('latin1')
  const header = /^\*(\d+)\r\n/.exec(text)
  if (!header) return null
  let at = header[0].length
  const command: string[] = []
  for (let i = 0; i < Number(header[1]); i++) {
    const size = /^\$(\d+)\r\n/.exec(text.slice(at))
    if (!size) return null
    const start = at + size[0].length
    const end = start + Number(size[1])
    if (text.length < end + 2) return null
    command.push(text.slice(start, end))
    at = end + 2
  }
  return { command, length: at }
}

/**
 * A server that says it is Redis `version`: INFO answers as Redis does, anything else +OK. `info`:
 * 'refused' answers INFO with an ACL error; 'once' answers the first (ioredis's ready check) and
 * never the next, as a network partition right after connecting would.
 */
function fakeRedis(version: string, info: 'answered' | 'refused' | 'once' = 'answered'): Server {
  const text = `# Server\r\nredis_version:${version}\r\nredis_mode:standalone\r\n# Persistence\r\nloading:0\r\n`
  let infos = 0
  return createServer((socket) =>
    answerCommands(socket, ([name]) => {
      if (name?.toLowerCase() !== 'info') return '+OK\r\n'
      infos += 1
      if (info === 'refused') return "-NOPERM User default has no permissions to run the 'info' command\r\n"
      if (info === 'once' && infos > 1) return ''
      return `$${Buffer.byteLength(text)}\r\n${text}\r\n`
    }),
  )
}

async function listening(t: Test, server: Server, port = 0): Promise<number> {
  const sockets = new Set<Socket>()
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    return new Promise<void>((done) => server.close(() => done()))
  })
  return (server.address() as AddressInfo).port
}

const redisEnv = (port: number) => ({
  REDIS_URL: `redis://127.0.0.1:${port}`,
  RATE_LIMIT_KEY_PREFIX: 'version-test:',
})

t.test('versions are compared by major and minor', async (t) => {
  t.equal(MIN_REDIS_VERSION, '7.0')
  for (const v of ['7.0.0', '7.0', '7.2.4', '8.0.2', '10.1.0']) t.ok(versionSupported(v), `${v} supported`)
  for (const v of ['6.2.14', '6.9.9', '5.0.7', '0.0.0']) t.notOk(versionSupported(v), `${v} refused`)
})

t.test('Redis older than 7.0 at boot: the service refuses to start with one clear line', async (t) => {
  const port = await listening(t, fakeRedis('6.2.14'))
  await t.rejects(build(t, { env: redisEnv(port) }), {
    name: 'ConfigError',
    message: 'Redis 6.2.14 at REDIS_URL is too old: the service needs Redis 7.0 or later',
  })
})

t.test('a supported version boots', async (t) => {
  const port = await listening(t, fakeRedis('7.2.4'))
  const app = await build(t, { env: redisEnv(port) })
  t.ok(app.redis, 'Redis configured')
})

t.test('INFO refused (an ACL): boots and says the version is unknown', async (t) => {
  const log = logCapture()
  const port = await listening(t, fakeRedis('6.0.0', 'refused'))
  await build(t, { env: redisEnv(port), logStream: log.stream })
  t.match(
    log.lines.filter((l) => l.event === 'redis.version_unknown'),
    [{ level: 'warn' }],
  )
})

t.test('regression: INFO never answered after connecting: boot goes on within its bound', async (t) => {
  const log = logCapture()
  const port = await listening(t, fakeRedis('6.0.0', 'once'))
  const startedAt = Date.now()
  await build(t, { env: redisEnv(port), logStream: log.stream })
  t.ok(
    Date.now() - startedAt < 8000,
    `boots (${Date.now() - startedAt} ms), not stuck on the unanswered INFO`,
  )
  t.match(
    log.lines.filter((l) => l.event === 'redis.version_unknown'),
    [{ level: 'warn' }],
  )
})

t.test('an old Redis met after boot (down at boot, then up) is reported in the log', async (t) => {
  const log = logCapture()
  // Reserve a port, then free it: Redis is down when the service boots.
  const probe = createServer()
  const port = await listening(t, probe)
  await new Promise<void>((done) => probe.close(() => done()))
  const app = await build(t, { env: redisEnv(port), logStream: log.stream })
  t.ok(app.redis, 'boots with Redis down (limits fail open or closed as before)')
  t.same(
    log.lines.filter((l) => l.event === 'redis.version_unsupported'),
    [],
    'nothing to report yet',
  )

  await listening(t, fakeRedis('6.2.14'), port)
  for (let i = 0; i < 100 && !log.lines.some((l) => l.event === 'redis.version_unsupported'); i++) {
    await new Promise((done) => setTimeout(done, 100))
  }
  t.match(
    log.lines.filter((l) => l.event === 'redis.version_unsupported'),
    [{ level: 'error', version: '6.2.14', msg: /needs Redis 7\.0 or later/ }],
  )
})
