import t from 'tap'
import { type CounterStore, MemoryCounterStore, rateLimitStore } from '../../lib/counter-store.js'

t.test('a bounded memory store drops the oldest window first; the default never drops one', async (t) => {
  const bounded = new MemoryCounterStore(2)
  const unbounded = new MemoryCounterStore()
  t.teardown(() => {
    bounded.close()
    unbounded.close()
  })
  await bounded.increment('a', 60_000)
  await bounded.increment('a', 60_000)
  await bounded.increment('b', 60_000)
  await bounded.increment('c', 60_000)
  t.equal((await bounded.increment('b', 60_000)).count, 2, 'b survived')
  t.equal((await bounded.increment('a', 60_000)).count, 1, 'a, the oldest window, was dropped')

  await unbounded.increment('victim', 60_000)
  for (let i = 0; i < 20_000; i++) await unbounded.increment(`spray:${i}`, 60_000)
  t.equal((await unbounded.increment('victim', 60_000)).count, 2, 'spraying keys cannot evict a budget')
})

t.test('the rate-limit store counts in the store it is given when it counts, per route', async (t) => {
  let current: CounterStore | undefined
  const Store = rateLimitStore(() => {
    if (!current) throw new Error('store asked for before it exists')
    return current
  }, 'rl:')
  const global = new Store({})
  const register = global.child({ routeInfo: { method: 'POST', url: '/api/auth/register' } } as never)
  const memory = new MemoryCounterStore()
  t.teardown(() => memory.close())
  current = memory // provided after the limiter was built, as the Redis plugin does

  const incr = (store: typeof global, key: string) =>
    new Promise<{ current: number; ttl: number }>((resolve, reject) =>
      store.incr(key, (error, result) => (error || !result ? reject(error) : resolve(result)), 1000, 10),
    )
  t.equal((await incr(global, 'ip:1.2.3.4')).current, 1)
  t.equal((await incr(global, 'ip:1.2.3.4')).current, 2)
  const route = await incr(register, 'ip:1.2.3.4')
  t.equal(route.current, 1, 'a route with its own limit has its own counter')
  t.ok(route.ttl > 0 && route.ttl <= 1000, 'ttl is what is left of the window, in ms')
  t.equal((await memory.increment('rl:ip:1.2.3.4', 1000)).count, 3, 'keys are <namespace><key>')
  t.equal(
    (await memory.increment('rl:POST/api/auth/register-ip:1.2.3.4', 1000)).count,
    2,
    'route keys are <namespace><method><url>-<key>, as in the plugin',
  )

  current = {
    increment: async () => Promise.reject(new Error('store down')),
    decrement: async () => undefined,
  }
  await t.rejects(
    incr(global, 'ip:1.2.3.4'),
    /store down/,
    'a store error reaches the limiter (which fails open)',
  )
})
