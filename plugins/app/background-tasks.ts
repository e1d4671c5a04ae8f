import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** Work a request starts but does not wait for: run after the answer, tracked, awaited on close. */

declare module 'fastify' {
  interface FastifyInstance {
    backgroundTasks: {
      /**
       * Runs `task` after the current answer is on its way: its duration and outcome cannot show in
       * the answer (e.g. whether an address has an account, OWASP ASVS 5.0 6.3.8). A failure is
       * logged as `<event>.failed`, never shown to anyone.
       */
      run: (event: string, task: () => Promise<void>) => void
      /** Resolves once every task started so far has ended (shutdown; tests). */
      settled: () => Promise<void>
    }
  }
}

async function backgroundTasksPlugin(app: FastifyInstance) {
  const pending = new Set<Promise<void>>()

  function run(event: string, task: () => Promise<void>): void {
    // setImmediate: the handler returns and its answer is written before the task does any work.
    const done = new Promise<void>((resolve) => setImmediate(resolve))
      .then(task)
      .catch((err: unknown) => app.log.error({ err, event: `${event}.failed` }, `${event} failed`))
      .finally(() => pending.delete(done))
    pending.add(done)
  }

  async function settled(): Promise<void> {
    // A task may start another: wait until none is left.
    while (pending.size > 0) await Promise.allSettled([...pending])
  }

  app.decorate('backgroundTasks', { run, settled })
  // onClose hooks run in reverse order of registration: this one, registered after the pool and the
  // counters it depends on, runs before they close, once no request can start a new task.
  app.addHook('onClose', async function finishBackgroundTasks() {
    await settled()
  })
}

export default fp(backgroundTasksPlugin, { name: 'background-tasks', dependencies: ['db', 'redis'] })
