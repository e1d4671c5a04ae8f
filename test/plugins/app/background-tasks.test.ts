import t from 'tap'
import { build, logCapture } from '../../helper.js'

/** Work a request starts after its answer: it runs after the handler, fails quietly, and close waits for it. */

t.test(
  'a task runs after the answer, its failure is logged and never shown, close waits for it',
  async (t) => {
    const logs = logCapture()
    const order: string[] = []
    let finished = false
    const app = await build(t, {
      logStream: logs.stream,
      setup: (app) => {
        app.get('/test/after', async function after() {
          app.backgroundTasks.run('test.order', async () => {
            order.push('task')
          })
          order.push('handler')
          return { ok: true }
        })
        app.get('/test/fails', async function fails() {
          app.backgroundTasks.run('test.broken', async () => {
            throw new Error('the task broke')
          })
          return { ok: true }
        })
        app.get('/test/slow', async function slow() {
          app.backgroundTasks.run('test.slow', async () => {
            await new Promise((resolve) => setTimeout(resolve, 300))
            // The pool is still open: close waits for this task before it ends the pool.
            await app.sql`select 1`
            finished = true
          })
          return { ok: true }
        })
      },
    })

    t.equal((await app.inject('/test/after')).statusCode, 200)
    await app.backgroundTasks.settled()
    t.same(order, ['handler', 'task'], 'the task starts once the handler has returned')

    const failed = await app.inject('/test/fails')
    t.same([failed.statusCode, failed.json()], [200, { ok: true }], 'the failure does not reach the answer')
    await app.backgroundTasks.settled()
    const line = logs.lines.find((l) => l.event === 'test.broken.failed')
    t.ok(line, 'the failure is logged under its event')
    t.equal((line?.err as { message?: string } | undefined)?.message, 'the task broke')

    t.equal((await app.inject('/test/slow')).statusCode, 200)
    t.equal(finished, false, 'the answer did not wait for the task')
    await app.close()
    t.equal(finished, true, 'close waited for the task, which could still use the database')
  },
)
