// The load generator, a child of bench/run.mjs so the orchestrator is not the one generating load.
// Each message { jobs } runs its autocannon jobs concurrently and answers { results, cpuMicros, wallMs }:
// this process's own CPU over the jobs, so the report can say when the generator was the bottleneck.
import autocannon from 'autocannon'

/** JSON-only job → autocannon options (hooks live here: functions do not cross the IPC channel). */
function optionsFor(job) {
  const options = {
    url: job.url,
    method: job.method ?? 'GET',
    headers: job.headers ?? {},
    connections: job.connections,
    duration: job.duration,
    timeout: 10,
  }
  if (job.body !== undefined) options.body = job.body
  if (job.overallRate) options.overallRate = job.overallRate
  if (job.mode === 'cookie-chain') Object.assign(options, cookieChain(job))
  return options
}

/**
 * Each connection carries its own cookie jar forward: the jar it was given, updated from every
 * response's Set-Cookie (a rotated refresh cookie replaces the old one), sent with its next request.
 *
 * Two autocannon traps shape this. The `requests` objects are shared by every connection and hold
 * the built request (requestBuffer), and a connection's first request is sent from that buffer
 * without rebuilding it, so every connection would open with the last-built connection's cookie:
 * each connection gets its own copy of the request (setRequests in setupClient). And with a single
 * request the per-connection `context` is reset to a clone of `initialContext` after every response,
 * so the jar cannot live in the context: the context only carries the connection's index.
 */
function cookieChain(job) {
  const jars = job.jars.map((jar) => new Map(Object.entries(jar)))
  let next = 0
  const template = {
    method: job.method ?? 'POST',
    path: job.path,
    setupRequest(request, context) {
      const jar = jars[context.conn]
      if (!jar) return request // the build before setupClient has named the connection
      const cookie = [...jar].map(([name, value]) => `${name}=${value}`).join('; ')
      return { ...request, headers: { ...request.headers, cookie } }
    },
    onResponse(_status, _body, context, headers) {
      const jar = jars[context.conn]
      const setCookie = headers['set-cookie'] ?? headers['Set-Cookie']
      if (!jar || !setCookie) return
      for (const line of [setCookie].flat()) {
        const pair = line.split(';')[0] ?? ''
        const at = pair.indexOf('=')
        if (at <= 0) continue
        const value = pair.slice(at + 1)
        // A cleared cookie (empty value, Max-Age=0) leaves the jar.
        if (value === '') jar.delete(pair.slice(0, at))
        else jar.set(pair.slice(0, at), value)
      }
    },
  }
  return {
    setupClient(client) {
      const iterator = client.requestIterator
      iterator.initialContext = { conn: next++ % jars.length }
      iterator.resetContext()
      iterator.setRequests([{ ...template }])
    },
  }
}

function summary(job, r) {
  return {
    id: job.id,
    requests: r.requests.total,
    seconds: r.duration,
    rps: r.requests.total / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    ok2xx: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    statusCodes: r.statusCodeStats,
  }
}

process.on('message', async (message) => {
  if (message.exit) process.exit(0)
  try {
    const before = process.cpuUsage()
    const start = performance.now()
    const results = await Promise.all(
      message.jobs.map(async (job) => summary(job, await autocannon(optionsFor(job)))),
    )
    const cpu = process.cpuUsage(before)
    process.send({ results, cpuMicros: cpu.user + cpu.system, wallMs: performance.now() - start })
  } catch (error) {
    process.send({ error: String(error?.stack ?? error) })
  }
})
process.send({ ready: true })
