// Child processes: start one and wait for the JSON line that announces it, stop it and wait.
import { spawn } from 'node:child_process'

const START_TIMEOUT_MS = 120_000
const STOP_TIMEOUT_MS = 15_000

/**
 * Starts `node ...args` and resolves once it prints a JSON line with `url` (servers) or `ready`:
 * { child, pid, info } where info is that line. Later output is drained and dropped; the last
 * lines are kept for the error when the child dies early.
 */
export function startChild(name, args, { env = {}, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const tail = []
    let buffer = ''
    let started = false
    const keep = (line) => {
      tail.push(line)
      if (tail.length > 20) tail.shift()
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${name}: not started after ${START_TIMEOUT_MS / 1000} s\n${tail.join('\n')}`))
    }, START_TIMEOUT_MS)
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk) => {
      if (started) return
      buffer += chunk
      const lines = buffer.split('\n')
      buffer = lines.pop() ?? ''
      for (const line of lines) {
        keep(line)
        if (!line.startsWith('{')) continue
        let info
        try {
          info = JSON.parse(line)
        } catch {
          continue
        }
        if (typeof info.url === 'string' || info.ready === true) {
          started = true
          clearTimeout(timer)
          buffer = ''
          return resolve({ name, child, pid: child.pid, info })
        }
      }
    })
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk) => {
      for (const line of chunk.split('\n')) if (line) keep(line)
      if (started) process.stderr.write(`[${name}] ${chunk}`)
    })
    child.once('exit', (code, signal) => {
      child.exited = true
      if (started) return
      clearTimeout(timer)
      reject(new Error(`${name}: exited (${signal ?? code}) before it was ready\n${tail.join('\n')}`))
    })
  })
}

/** SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT_MS. */
export async function stopChild(started) {
  const { child } = started
  if (child.exited || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
  await exited
  clearTimeout(timer)
}
