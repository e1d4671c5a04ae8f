// `node scripts/otlp-sink.mjs [port]`: an OTLP/HTTP endpoint that accepts every export and keeps
// nothing, for measuring the service with tracing on (README, Tracing). It counts what it was sent
// and prints the totals when stopped.
import { createServer } from 'node:http'

const port = Number(process.argv[2] ?? 4318)
let exports = 0
let bytes = 0
const server = createServer((req, res) => {
  req.on('data', (chunk) => {
    bytes += chunk.length
  })
  req.on('end', () => {
    exports++
    // An empty message is a full success in both encodings (no partial_success).
    const json = (req.headers['content-type'] ?? '').startsWith('application/json')
    res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' })
    res.end(json ? '{}' : '')
  })
})
server.listen(port, '127.0.0.1', () => {
  console.log(`otlp-sink: OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:${server.address().port}`)
})
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.log(`otlp-sink: ${exports} exports, ${bytes} bytes`)
    server.close()
    process.exit(0)
  })
}
