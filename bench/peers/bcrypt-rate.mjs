// Baseline: raw bcrypt.compare (the service's bcrypt package) at a cost, `concurrency` compares in
// flight, for `seconds` after a short warm-up. Prints one JSON line with the rate and its own CPU.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import bcrypt from 'bcrypt'

const { values } = parseArgs({
  options: {
    cost: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
  },
})
const cost = Number(values.cost)
const concurrency = Number(values.concurrency)
// The service compares a 64-character pre-hash (HMAC-SHA256 of the password, base64url-ish): same length here.
const input = 'x'.repeat(64)
const hash = await bcrypt.hash(input, cost)

async function loop(until, latencies) {
  let count = 0
  const worker = async () => {
    while (performance.now() < until) {
      const start = performance.now()
      if (!(await bcrypt.compare(input, hash))) throw new Error('bcrypt.compare failed')
      latencies?.push(performance.now() - start)
      count++
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return count
}

await loop(performance.now() + Number(values.warmup) * 1000)
const latencies = []
const cpuBefore = process.cpuUsage()
const start = performance.now()
const count = await loop(start + Number(values.seconds) * 1000, latencies)
const elapsed = (performance.now() - start) / 1000
const cpu = process.cpuUsage(cpuBefore)
latencies.sort((a, b) => a - b)
const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? null
const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))
console.log(
  JSON.stringify({
    done: true,
    count,
    seconds: elapsed,
    rate: count / elapsed,
    p50: at(0.5),
    p99: at(0.99),
    cpuMicros: cpu.user + cpu.system,
    peakRss: hwm ? Number(hwm[1]) * 1024 : null,
  }),
)
