import type { Sql } from 'postgres'

/**
 * One seam for watching postgres.js queries (metrics' durations, tracing's spans). postgres.js has
 * no query hooks and no OpenTelemetry instrumentation, so this wraps the one method every query
 * runs exactly once when it starts executing (`Query.prototype.handle`, reached by `await`, `.then`
 * or `.forEach`), in the caller's async context. Nothing is patched while no observer is added.
 */

/** What an observer learns when a query settles. */
export interface SettledQuery {
  /** The statement text as sent (with `$n` placeholders, never the parameters). */
  text: string
  /** The command tag PostgreSQL answered (`SELECT`, `INSERT`…), when it succeeded. */
  command: string | undefined
  /** The error it failed with, if it did. */
  error: unknown
}

/** Called as a query starts; the function it returns is called once as that query settles. */
export type QueryObserver = () => (settled: SettledQuery) => void

interface QueryInternals {
  executed: boolean
  string?: string
  resolve: (value: unknown) => unknown
  reject: (error: unknown) => unknown
}

interface QueryPrototype {
  handle: (this: QueryInternals) => Promise<void>
}

const observers = new Set<QueryObserver>()
let patched: { proto: QueryPrototype; original: QueryPrototype['handle'] } | undefined

function observedHandle(this: QueryInternals): Promise<void> {
  const original = patched?.original as QueryPrototype['handle']
  if (this.executed || observers.size === 0) return original.call(this)
  const ends = [...observers].map((observer) => isolated(observer))
  let settled = false
  const settle = (command: string | undefined, error: unknown) => {
    // Once: a describe() resolves twice, and a query settles only once whatever postgres.js does.
    if (settled) return
    settled = true
    const query = { text: this.string ?? '', command, error }
    for (const end of ends) if (end) isolated(() => end(query))
  }
  let { resolve, reject } = this
  const observedResolve = (value: unknown) => {
    settle((value as { command?: string } | null)?.command, undefined)
    return resolve(value)
  }
  const observedReject = (error: unknown) => {
    settle(undefined, error)
    return reject(error)
  }
  // Accessors, not a one-time wrap: a cursor sets new resolve/reject for each batch it asks for,
  // and the last of them is the one that ends the query.
  Object.defineProperties(this, {
    resolve: {
      configurable: true,
      get: () => observedResolve,
      set: (fn: typeof resolve) => {
        resolve = fn
      },
    },
    reject: {
      configurable: true,
      get: () => observedReject,
      set: (fn: typeof reject) => {
        reject = fn
      },
    },
  })
  return original.call(this)
}

/**
 * An observer's failure is reported and goes no further: thrown inside postgres.js's resolve, it
 * would leave the query unsettled and end its connection, a metrics bug taking the database down.
 */
function isolated<R>(run: () => R): R | undefined {
  try {
    return run()
  } catch (error) {
    process.emitWarning(
      `query observer failed: ${(error as Error)?.message ?? error}`,
      'QueryObserverWarning',
    )
    return undefined
  }
}

/**
 * Watches every query of every postgres.js pool in the process (the class is shared) until the
 * returned function is called. `sql` is only used to reach the query class: nothing is sent.
 */
export function addQueryObserver(sql: Sql, observer: QueryObserver): () => void {
  if (!patched) {
    // A tagged template builds a query without running it; its prototype is postgres.js's Query.
    const proto = Object.getPrototypeOf(sql`select 1`) as QueryPrototype
    patched = { proto, original: proto.handle }
    proto.handle = observedHandle
  }
  observers.add(observer)
  return function removeQueryObserver() {
    observers.delete(observer)
    if (observers.size === 0 && patched) {
      patched.proto.handle = patched.original
      patched = undefined
    }
  }
}
