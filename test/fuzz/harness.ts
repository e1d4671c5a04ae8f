import fc from 'fast-check'
import t, { type Test } from 'tap'
import { build, type InjectResponse, PROBLEM_KEYS, PROBLEM_TYPE } from '../helper.js'
import { allowedStatuses, type Operation, readOperations } from './openapi.js'
import { planArb } from './requests.js'
import { type ActorName, World } from './world.js'

/**
 * Runs the fuzzer over a group of operations: FUZZ_RUNS requests per operation and actor, from a
 * fixed seed (FUZZ_SEED overrides it; FUZZ_PATH with FUZZ_ONLY replays one shrunk counterexample).
 */

/** Sized so the fuzz files together stay within 3 minutes next to the rest of the suite on 2 cores. */
export const RUNS = Number(process.env.FUZZ_RUNS ?? 400)
/**
 * A file's time budget, shared by its properties: on a machine so loaded that the runs would not fit,
 * a property stops early (and says so) instead of tap's 120 s timeout killing the whole file.
 */
const FILE_BUDGET_MS = Number(process.env.FUZZ_FILE_BUDGET_MS ?? 40_000)
export const SEED = Number(process.env.FUZZ_SEED ?? 12)
const PATH = process.env.FUZZ_PATH
const ONLY = process.env.FUZZ_ONLY

/**
 * Limits no fuzz run can reach (each request also comes from a random address), so a 429 never
 * stands in for the answer the request would have had; bcrypt at its cheapest, as only the
 * answers are under test. Every other setting is test/helper.ts's.
 */
const FUZZ_ENV = {
  RATE_LIMIT_MAX: '1000000',
  LOGIN_RATE_LIMIT_MAX: '10000',
  LOGIN_ACCOUNT_MAX_FAILURES: '10000',
  LOGIN_DEVICE_MAX_FAILURES: '10000',
  REGISTER_RATE_LIMIT_MAX: '10000',
  REFRESH_RATE_LIMIT_MAX: '100000',
  BCRYPT_COST: '4',
}

/** Why an answer breaks the contract, or undefined when it keeps it. */
export function breach(op: Operation, allowed: Set<number>, res: InjectResponse): string | undefined {
  const status = res.statusCode
  if (status >= 500) return `a ${status}`
  if (status === 429) return 'a 429: raise the fuzz limits in test/fuzz/harness.ts'
  if (status < 400) return op.declared.has(status) ? undefined : `an undeclared ${status}`
  if (!allowed.has(status)) return `a ${status}, not among ${[...allowed].join(', ')}`
  if (!PROBLEM_TYPE.test(String(res.headers['content-type']))) return 'an error that is not problem+json'
  let body: Record<string, unknown>
  try {
    body = res.json()
  } catch {
    return 'a problem body that is not JSON'
  }
  const missing = PROBLEM_KEYS.filter((k) => typeof body[k] !== (k === 'status' ? 'number' : 'string'))
  if (missing.length) return `a problem without ${missing.join(', ')}`
  return body.status === status ? undefined : `a problem whose status says ${body.status}`
}

/** Statuses that mean the request never got past parsing or validation. */
const REFUSED_EARLY = new Set([400, 404, 413, 414, 415])

async function fuzzOperation(t: Test, world: World, op: Operation, actor: ActorName, budgetMs: number) {
  const allowed = allowedStatuses(op)
  const seen = new Map<number, number>()
  // interruptAfterTimeLimit stops fast-check while a request may still be running: the next
  // operation must not start (and take its checksum) before that request's writes have landed.
  let inFlight: Promise<unknown> = Promise.resolve()
  const checkOne = async (plan: Parameters<World['toInject']>[0]) => {
    const who = await world.credentials(actor)
    const before = await world.checksum()
    const res = await world.app.inject(world.toInject(plan, op.method, who))
    seen.set(res.statusCode, (seen.get(res.statusCode) ?? 0) + 1)
    const changed = await world.changedSince(before)
    const wrong = breach(op, allowed, res)
    if (wrong) throw new Error(`answered ${wrong}: ${res.statusCode} ${res.body.slice(0, 400)}`)
    if (res.statusCode >= 400 && changed.length)
      throw new Error(`a rejected request (${res.statusCode}) changed rows of ${changed.join(', ')}`)
    if (res.statusCode < 300 && changed.length) world.somethingChanged()
  }
  const property = fc.asyncProperty(planArb(op, world.known, actor !== 'anonymous'), (plan) => {
    const run = checkOne(plan)
    inFlight = run.catch(() => {})
    return run
  })
  const details = await fc.check(property, {
    numRuns: RUNS,
    seed: SEED,
    interruptAfterTimeLimit: budgetMs,
    ...(PATH ? { path: PATH } : {}),
  })
  await inFlight
  if (details.interrupted) {
    t.comment(`time budget reached after ${details.numRuns} of ${RUNS} requests`)
    world.forgetChecksum() // the interrupted request may have changed rows after its own check
  }
  if (details.failed) {
    const replay = `FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath} FUZZ_ONLY='${t.name}'`
    // defaultReportMessage leaves out what the property threw: say it, or a flake cannot be read.
    const thrown =
      details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)
    t.fail(`${thrown}\n${fc.defaultReportMessage(details)}\nReplay: ${replay}`)
  } else t.pass(`${details.numRuns} requests: ${JSON.stringify(Object.fromEntries(seen))}`)
  return seen
}

/** Who fuzzes an operation: nobody, a user, and for the admin API an admin as well. */
function actorsFor(op: Operation): ActorName[] {
  return op.tag === 'admin' ? ['anonymous', 'user', 'admin'] : ['anonymous', 'user']
}

/** One test file's share: the operations `select` picks, each fuzzed as each of its actors. */
export function fuzzGroup(name: string, select: (op: Operation) => boolean): void {
  t.test(name, async (t) => {
    const app = await build(t, { env: FUZZ_ENV })
    const ops = (await readOperations(app)).filter(select)
    t.ok(ops.length > 0, 'the group has operations')
    const world = await World.create(t, app)
    const budgetMs = FILE_BUDGET_MS / ops.reduce((n, op) => n + actorsFor(op).length, 0)
    for (const op of ops) {
      for (const actor of actorsFor(op)) {
        const label = `${op.method} ${op.path} as ${actor}`
        if (ONLY && !label.includes(ONLY)) continue
        await t.test(label, async (t) => {
          const seen = await fuzzOperation(t, world, op, actor, budgetMs)
          const takesInput = op.body !== undefined || op.parameters.length > 0
          if (takesInput && actor === actorsFor(op).at(-1) && !ONLY) {
            const reached = [...seen.keys()].filter((s) => !REFUSED_EARLY.has(s))
            t.ok(reached.length > 0, 'some requests pass validation and reach the handler')
          }
        })
      }
    }
    // The process and its pools survived every request.
    t.equal((await app.inject('/health/ready')).statusCode, 200, 'still ready after fuzzing')
  })
}
