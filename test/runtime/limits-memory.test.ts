// A throttle keyed on a header keeps what it learns of key values bounded: a client that sends
// thousands of distinct kilobyte-long values (a header may hold up to 16 KB) must not make the
// gateway hold their text. Each value still gets its own counter.
import { expect, test } from 'bun:test'
import type { RequestContext } from '../../src/runtime/context.ts'
import { LimitGroup } from '../../src/runtime/limits.ts'
import { memoryStore } from '../../src/store/memory.ts'

function ctx(value: string): RequestContext {
  return {
    req: { headers: { get: (name: string) => (name === 'x-tenant' ? value : null) } },
    ip: '127.0.0.1',
    identity: null,
    responseHeaders: null,
    limit: null,
  } as unknown as RequestContext
}

test('thousands of distinct 8 KB header values: each counted on its own, none of their text kept', async () => {
  const store = memoryStore()
  const group = new LimitGroup('GET /t', store, new Map(), () => Date.now())
  group.add({
    source: 'throttle',
    rate: { limit: 1, windowMs: 60_000 },
    burst: 0,
    calendar: null,
    key: [{ kind: 'header', name: 'x-tenant' }],
    keyText: 'header X-Tenant',
  })
  const long = (i: number) => `${'v'.repeat(8 * 1024)}-${i}`
  // Warm up, so the measure below sees only what the values leave behind.
  for (let i = 0; i < 200; i++) group.decide(ctx(`warm-${i}`))
  Bun.gc(true)
  const before = process.memoryUsage().heapUsed
  const N = 3000
  for (let i = 0; i < N; i++) expect(group.decide(ctx(long(i)))).toBeUndefined()
  Bun.gc(true)
  const grown = process.memoryUsage().heapUsed - before
  // Kept, the values' text alone would be 3000 × 8 KB = 24 MB (more with copies); the counters
  // themselves hold a hash per value.
  expect(grown).toBeLessThan(8 * 1024 * 1024)
  // Each value has its own counter: a second request with any of them is refused.
  for (const i of [0, 1, N - 1]) expect((group.decide(ctx(long(i))) as { code: string } | undefined)?.code).toBe('rate_limited')
  await store.close()
})
