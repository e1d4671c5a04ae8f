import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { expectProblem, scrapeMetrics, serverProcessEnv } from './helper.js'

/** server.ts with METRICS_PORT: the scrape listener starts after the app and closes at shutdown. */

const root = dirname(dirname(fileURLToPath(import.meta.url)))

t.test('server.ts serves /metrics on METRICS_PORT only, and SIGTERM closes it with the app', async (t) => {
  const child = spawn(process.execPath, [...process.execArgv, join(root, 'server.ts')], {
    cwd: root,
    env: await serverProcessEnv({ METRICS_PORT: '0' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => {
    stdout += chunk
  })
  child.stderr.on('data', (chunk) => {
    stderr += chunk
  })
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)))
  const events = () =>
    stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
  const urls = await new Promise<{ api: string; metrics: string }>((resolve, reject) => {
    child.stdout.on('data', () =>
      setImmediate(() => {
        const api = events().find((e) => e.event === 'server.started')?.url
        const metrics = events().find((e) => e.event === 'metrics.started')?.metricsUrl
        if (typeof api === 'string' && typeof metrics === 'string') resolve({ api, metrics })
      }),
    )
    void exited.then((code) => reject(new Error(`server exited (${code}) before starting: ${stderr}`)))
  })
  t.match(urls.metrics, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
  t.not(new URL(urls.metrics).port, new URL(urls.api).port, 'a port of its own')

  // Boot on a busy machine can stall the event loop past load shedding's threshold: wait out a 503.
  let publicMetrics = await fetch(`${urls.api}/metrics`)
  for (let i = 0; i < 20 && publicMetrics.status === 503; i++) {
    await new Promise((resolve) => setTimeout(resolve, 250))
    publicMetrics = await fetch(`${urls.api}/metrics`)
  }
  const body = await publicMetrics.text()
  expectProblem(
    t,
    // expectProblem reads an inject answer: the parts of a fetch answer it looks at.
    {
      statusCode: publicMetrics.status,
      headers: { 'content-type': publicMetrics.headers.get('content-type') ?? '' },
      json: () => JSON.parse(body),
    } as never,
    404,
    undefined,
    'the public port has no /metrics',
  )
  const notFound = { route: 'unmatched', status_class: '4xx' }
  let scraped = await scrapeMetrics(urls.metrics)
  // The count is taken as the response finishes, which may trail the client's read by a moment.
  for (let i = 0; i < 50 && scraped.value('bulwark_http_request_duration_seconds_count', notFound) < 1; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    scraped = await scrapeMetrics(urls.metrics)
  }
  t.equal(scraped.value('bulwark_http_request_duration_seconds_count', notFound), 1, 'that 404 is counted')
  t.ok(scraped.value('process_cpu_seconds_total') > 0, 'process metrics')

  child.kill('SIGTERM')
  t.equal(await exited, 0, 'exit code 0')
  await t.rejects(fetch(urls.metrics), 'the metrics listener is closed')
  t.equal(stderr, '', 'nothing on stderr')
})
