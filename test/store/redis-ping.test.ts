// The Redis store's ping (what /readyz asks): a connection still being made is waited for;
// a Redis that does not answer is a prompt error. Needs Redis on 127.0.0.1:6379 (.ci/run starts it).
import { expect, test } from 'bun:test'
import { redisStore } from '../../src/store/redis.ts'

test('ping right after start waits for the first connection instead of failing', async () => {
  const store = redisStore('redis://127.0.0.1:6379')
  try {
    await store.ping()
  } finally {
    await store.close()
  }
})

test('ping against a Redis that refuses connections fails promptly', async () => {
  const store = redisStore('redis://127.0.0.1:1')
  try {
    const t0 = Date.now()
    const results = await Promise.allSettled([store.ping(), store.ping(), store.ping()])
    expect(Date.now() - t0).toBeLessThan(1_500)
    for (const r of results) expect(r.status === 'rejected' && String(r.reason)).toMatch(/redis is/)
  } finally {
    await store.close()
  }
})
