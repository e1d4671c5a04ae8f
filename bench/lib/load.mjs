// Drives the load-generator child (bench/lib/load-child.mjs) from the orchestrator.
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const CHILD = fileURLToPath(new URL('./load-child.mjs', import.meta.url))

/** A load generator process; `run(jobs)` runs jobs concurrently and resolves with their results. */
export async function startGenerator() {
  const child = fork(CHILD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let pending = null
  child.on('message', (message) => {
    if (message.ready) return pending?.resolve()
    if (message.error) pending?.reject(new Error(`load generator: ${message.error}`))
    else pending?.resolve(message)
  })
  child.once('exit', (code) => pending?.reject(new Error(`load generator exited (${code})`)))
  const next = () =>
    new Promise((resolve, reject) => {
      pending = { resolve, reject }
    })
  await next()
  return {
    pid: child.pid,
    async run(jobs) {
      const answer = next()
      child.send({ jobs })
      return answer
    },
    async stop() {
      if (child.exitCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.send({ exit: true })
      await exited
    },
  }
}
