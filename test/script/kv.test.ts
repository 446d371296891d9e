// The store's key/values (src/store/kv*.ts) against memory and the real Redis (127.0.0.1:6379,
// a key prefix of its own, removed afterwards), and a route's view of them (src/script/kv.ts).
import { afterAll, describe, expect, test } from 'bun:test'
import Redis from 'ioredis'
import { MemoryKeyValues } from '../../src/store/kv-memory.ts'
import { memoryStore } from '../../src/store/memory.ts'
import { redisStore } from '../../src/store/redis.ts'
import type { Store } from '../../src/store/store.ts'
import { routeKeyValues } from '../../src/script/kv.ts'
import { until } from '../helpers/poll.ts'

const REDIS = 'redis://127.0.0.1:6379'
const PREFIX = `portcullis-test:kv:${process.pid}:${Date.now()}:`
const opened: Store[] = []
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()))
  const r = new Redis(REDIS)
  const keys = await r.keys(`${PREFIX}*`)
  if (keys.length) await r.del(...keys)
  await r.quit()
})

let runs = 0
const kinds: [string, () => Store][] = [
  ['memory', memoryStore],
  ['redis', () => redisStore(REDIS, { prefix: `${PREFIX}${++runs}:` })],
]

describe.each(kinds)('%s', (_kind, make) => {
  const open = () => {
    const s = make()
    opened.push(s)
    return s
  }

  test('get, set, replace, delete', async () => {
    const { kv } = open()
    expect(await kv.get('a')).toBeNull()
    await kv.set('a', 'one', null)
    expect(await kv.get('a')).toBe('one')
    await kv.set('a', 'two', null)
    expect(await kv.get('a')).toBe('two')
    expect(await kv.delete('a')).toBe(true)
    expect(await kv.delete('a')).toBe(false)
    expect(await kv.get('a')).toBeNull()
  })

  test('a value with a lifetime expires', async () => {
    const { kv } = open()
    await kv.set('short', 'v', 50)
    expect(await kv.get('short')).toBe('v')
    await until(
      () => kv.get('short'),
      (v) => v === null,
      1_000,
      'expiry',
    )
  })

  test('through a route: JSON values, its own part of the key space', async () => {
    const { kv } = open()
    const a = routeKeyValues(kv, 'GET /a')
    const b = routeKeyValues(kv, 'GET /b')
    await a.set('k', { n: 1, list: ['x'] })
    expect(await a.get('k')).toEqual({ n: 1, list: ['x'] })
    expect(await b.get('k')).toBeNull()
    expect(await kv.get('k')).toBeNull()
    expect(await b.delete('k')).toBe(false)
    expect(await a.delete('k')).toBe(true)
  })
})

test('the Redis keys are PREFIX + kv:script:<route hash>:<key>', async () => {
  const prefix = `${PREFIX}layout:`
  const s = redisStore(REDIS, { prefix })
  opened.push(s)
  await routeKeyValues(s.kv, 'GET /orders/{id}').set('calls', 3, { ttlMs: 60_000 })
  const r = new Redis(REDIS)
  const keys = await r.keys(`${prefix}*`)
  expect(keys).toHaveLength(1)
  expect(keys[0]).toMatch(new RegExp(`^${prefix}kv:script:[0-9a-f]{16}:calls$`))
  expect(await r.pttl(keys[0]!)).toBeGreaterThan(50_000)
  await r.quit()
})

test('the memory store keeps at most its bounds, dropping the least recently used', async () => {
  const kv = new MemoryKeyValues({ maxKeys: 3, maxBytes: 1 << 20 })
  for (const k of ['a', 'b', 'c']) await kv.set(k, k, null)
  await kv.get('a')
  await kv.set('d', 'd', null)
  expect(await Promise.all(['a', 'b', 'c', 'd'].map((k) => kv.get(k)))).toEqual(['a', null, 'c', 'd'])
  expect(kv.size.keys).toBe(3)
})

test('a route refuses keys and values it cannot keep', async () => {
  const kv = routeKeyValues(memoryStore().kv, 'GET /x')
  await expect(kv.get('')).rejects.toThrow(TypeError)
  await expect(kv.set('k'.repeat(257), 1)).rejects.toThrow(TypeError)
  await expect(kv.set('k', 'x'.repeat(70_000))).rejects.toThrow(RangeError)
  await expect(kv.set('k', 1, { ttlMs: -1 })).rejects.toThrow(TypeError)
  await expect(kv.set('k', () => 1)).rejects.toThrow(TypeError)
})
