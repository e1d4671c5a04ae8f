// Baseline: bare node:http answering a small JSON body, nothing else.
import { createServer } from 'node:http'

const body = JSON.stringify({ status: 'ok' })
const server = createServer((_request, response) => {
  response.setHeader('content-type', 'application/json; charset=utf-8')
  response.end(body)
})
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ url: `http://127.0.0.1:${server.address().port}` }))
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
