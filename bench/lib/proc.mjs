// Readers of /proc: CPU time of a process and of every PostgreSQL server process, peak RSS, machine.
import { readdirSync, readFileSync } from 'node:fs'
import { cpus } from 'node:os'

/** Linux reports utime and stime in clock ticks of USER_HZ, 100 a second on every mainstream kernel. */
const TICK_US = 1_000_000 / 100

/** utime + stime of a process (all its threads), in µs; null when it is gone. */
export function cpuMicros(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name may contain spaces and parentheses: fields start after the last ") ".
    const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * TICK_US
  } catch {
    return null
  }
}

/**
 * utime + stime summed over every process named `postgres` on the machine, in µs: PostgreSQL's
 * postmaster, its background workers and every backend, whoever's they are (machine-wide).
 * Per-pid, so a delta only counts processes alive at both ends (pools keep their backends).
 */
export function postgresCpu() {
  const byPid = new Map()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      if (readFileSync(`/proc/${name}/comm`, 'utf8').trim() !== 'postgres') continue
    } catch {
      continue
    }
    const us = cpuMicros(name)
    if (us !== null) byPid.set(name, us)
  }
  return byPid
}

/** CPU µs the PostgreSQL processes used between two postgresCpu() samples. */
export function postgresCpuDelta(before, after) {
  let total = 0
  for (const [pid, us] of after) {
    const start = before.get(pid)
    // A backend born during the interval counts from zero.
    total += us - (start ?? 0)
  }
  return total
}

/** Peak resident set size (VmHWM) of a process in bytes; null when it is gone. */
export function peakRss(pid) {
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Number(match[1]) * 1024 : null
  } catch {
    return null
  }
}

export function machineInfo() {
  let cpuModel = cpus()[0]?.model ?? 'unknown'
  try {
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpuModel
  } catch {}
  let load = null
  try {
    load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number)
  } catch {}
  return {
    cpuModel,
    cores: cpus().length,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadAverage: load,
  }
}
