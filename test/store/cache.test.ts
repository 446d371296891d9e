// The answer cache of `cache response`: the memory cache's bounds (entries, bytes), least
// recently used eviction and expiry on a clock of the test's own; the entry encoding; and the
// same get/put cases against the real Redis (127.0.0.1:6379, a prefix of this run's own,
// removed afterwards), binary bodies and PX expiry included.
import { afterAll, describe, expect, test } from 'bun:test'
import Redis from 'ioredis'
import { MemoryAnswerCache } from '../../src/store/cache-memory.ts'
import { decodeEntry, encodeEntry, entrySize, type CachedAnswer, type CacheEntry } from '../../src/store/cache.ts'
import { memoryStore } from '../../src/store/memory.ts'
import { redisStore } from '../../src/store/redis.ts'
import { StoreUnavailable, type Store } from '../../src/store/store.ts'
import { closedPort } from '../helpers/gateway.ts'
import { untilTruthy } from '../helpers/poll.ts'

const REDIS = 'redis://127.0.0.1:6379'
const PREFIX = `portcullis-test:cache:${process.pid}:${Date.now()}:`

const answer = (body: string | Uint8Array, fields: Partial<CachedAnswer> = {}): CachedAnswer => ({
  kind: 'answer',
  status: 200,
  headers: [['content-type', 'text/plain']],
  body: typeof body === 'string' ? new TextEncoder().encode(body) : body,
  storedAt: Date.now(),
  ttlMs: 60_000,
  ...fields,
})

const text = (e: CacheEntry | null) => (e?.kind === 'answer' ? new TextDecoder().decode(e.body) : e === null ? null : `vary:${e.names}`)

describe('memory answer cache', () => {
  let clock = 1_000_000
  const now = () => clock

  test('keeps at most maxEntries: the least recently used goes first', async () => {
    const c = new MemoryAnswerCache({ maxEntries: 3, maxBytes: 1 << 20, now })
    for (const k of ['a', 'b', 'c']) await c.put(k, answer(k, { storedAt: clock }))
    expect(text(await c.get('a'))).toBe('a') // a is now the most recently used
    await c.put('d', answer('d', { storedAt: clock }))
    expect(text(await c.get('b'))).toBeNull()
    expect([text(await c.get('a')), text(await c.get('c')), text(await c.get('d'))]).toEqual(['a', 'c', 'd'])
    expect(c.size.entries).toBe(3)
  })

  test('keeps at most maxBytes, counting bodies, headers and keys', async () => {
    const one = entrySize('k1', answer('x'.repeat(1000), { storedAt: clock }))
    const c = new MemoryAnswerCache({ maxEntries: 100, maxBytes: one * 3, now })
    for (const k of ['k1', 'k2', 'k3']) await c.put(k, answer('x'.repeat(1000), { storedAt: clock }))
    expect(c.size).toEqual({ entries: 3, bytes: one * 3 })
    await c.put('k4', answer('y'.repeat(1000), { storedAt: clock }))
    expect(await c.get('k1')).toBeNull()
    expect(c.size.bytes).toBeLessThanOrEqual(one * 3)
    // Larger than the whole budget: not kept, and nothing else is evicted for it.
    await c.put('huge', answer('z'.repeat(one * 3), { storedAt: clock }))
    expect(await c.get('huge')).toBeNull()
    expect(text(await c.get('k4'))).toBe('y'.repeat(1000))
    expect(c.size.entries).toBe(3)
  })

  test('an entry expires ttlMs after storedAt, and an expired one is dropped when met', async () => {
    const c = new MemoryAnswerCache({ maxEntries: 10, maxBytes: 1 << 20, now })
    await c.put('k', answer('v', { storedAt: clock, ttlMs: 500 }))
    clock += 499
    expect(text(await c.get('k'))).toBe('v')
    clock += 1
    expect(await c.get('k')).toBeNull()
    expect(c.size).toEqual({ entries: 0, bytes: 0 })
  })

  test('room is made from expired entries before live ones are evicted', async () => {
    const c = new MemoryAnswerCache({ maxEntries: 3, maxBytes: 1 << 20, now })
    clock += 10_000
    await c.put('live-1', answer('1', { storedAt: clock, ttlMs: 60_000 }))
    await c.put('short', answer('s', { storedAt: clock, ttlMs: 100 }))
    await c.put('live-2', answer('2', { storedAt: clock, ttlMs: 60_000 }))
    clock += 200
    await c.put('live-3', answer('3', { storedAt: clock, ttlMs: 60_000 }))
    expect([text(await c.get('live-1')), text(await c.get('live-2')), text(await c.get('live-3'))]).toEqual(['1', '2', '3'])
  })

  test('put replaces an entry and its size', async () => {
    const c = new MemoryAnswerCache({ maxEntries: 10, maxBytes: 1 << 20, now })
    await c.put('k', answer('x'.repeat(500), { storedAt: clock }))
    await c.put('k', answer('short', { storedAt: clock }))
    expect(text(await c.get('k'))).toBe('short')
    expect(c.size).toEqual({ entries: 1, bytes: entrySize('k', answer('short')) })
  })

  test('the memory store has one', async () => {
    const s = memoryStore()
    await s.cache.put('k', answer('v'))
    expect(text(await s.cache.get('k'))).toBe('v')
    await s.close()
  })
})

describe('entry encoding', () => {
  test('round-trips answers with any bytes, and vary entries', () => {
    const bytes = new Uint8Array(256).map((_, i) => i)
    const a = answer(bytes, {
      headers: [
        ['x-a', 'one, two'],
        ['content-type', 'application/octet-stream'],
      ],
      status: 200,
    })
    const back = decodeEntry(encodeEntry(a))
    expect(back).toEqual({ ...a, body: expect.any(Uint8Array) })
    expect([...(back as CachedAnswer).body]).toEqual([...bytes])
    const v: CacheEntry = { kind: 'vary', names: ['accept-encoding', 'accept-language'], storedAt: 5, ttlMs: 6 }
    expect(decodeEntry(encodeEntry(v))).toEqual(v)
  })

  test('bytes that are not an entry decode to null', () => {
    for (const junk of [
      '',
      'no newline',
      '{"v":2}\nbody',
      'not json\n',
      '{"v":1,"kind":"answer","status":200,"headers":[1],"storedAt":1,"ttlMs":1}\n',
    ])
      expect(decodeEntry(Buffer.from(junk))).toBeNull()
  })
})

describe('redis answer cache', () => {
  const opened: Store[] = []
  let runs = 0
  const open = () => {
    const s = redisStore(REDIS, { prefix: `${PREFIX}${++runs}:` })
    opened.push(s)
    return s
  }

  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()))
    const r = new Redis(REDIS)
    const keys = await r.keys(`${PREFIX}*`)
    if (keys.length) await r.del(...keys)
    await r.quit()
  })

  test('get/put round-trip binary bodies under PREFIX cache:KEY with a PX expiry', async () => {
    const s = open()
    await s.ping()
    const bytes = new Uint8Array(70_000).map((_, i) => (i * 7919) % 256)
    await s.cache.put('k1', answer(bytes, { ttlMs: 30_000 }))
    const back = await s.cache.get('k1')
    expect(back?.kind).toBe('answer')
    expect(Buffer.from((back as CachedAnswer).body).equals(Buffer.from(bytes))).toBe(true)
    expect(await s.cache.get('other')).toBeNull()
    const r = new Redis(REDIS)
    const pttl = await r.pttl(`${PREFIX}${runs}:cache:k1`)
    await r.quit()
    expect(pttl).toBeGreaterThan(25_000)
    expect(pttl).toBeLessThanOrEqual(30_000)
  })

  test('an entry is gone after its ttl', async () => {
    const s = open()
    await s.ping()
    await s.cache.put('short', answer('v', { ttlMs: 150 }))
    expect(text(await s.cache.get('short'))).toBe('v')
    const t0 = Date.now()
    await untilTruthy(async () => (await s.cache.get('short')) === null)
    expect(Date.now() - t0).toBeLessThan(2_000)
  })

  test('a Redis that is not there: get and put reject with StoreUnavailable at once', async () => {
    const s = redisStore(`redis://127.0.0.1:${closedPort()}`, { prefix: `${PREFIX}down:` })
    opened.push(s)
    const t0 = performance.now()
    await expect(s.cache.get('k')).rejects.toBeInstanceOf(StoreUnavailable)
    await expect(s.cache.put('k', answer('v'))).rejects.toBeInstanceOf(StoreUnavailable)
    expect(performance.now() - t0).toBeLessThan(100)
  })
})
