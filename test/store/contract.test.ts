// The Store contract: the same cases against the embedded memory store and the real Redis
// (127.0.0.1:6379, a key prefix of its own, removed afterwards), plus what only Redis can do:
// notify another instance, meet records it did not write, and be down.
import { afterAll, describe, expect, test } from 'bun:test'
import Redis from 'ioredis'
import { AppInput, toStoredApp, type StoredApp } from '../../src/store/app-record.ts'
import { memoryStore } from '../../src/store/memory.ts'
import { redisStore } from '../../src/store/redis.ts'
import { StoreUnavailable, type AppChange, type Store } from '../../src/store/store.ts'
import { freePort } from '../helpers/gateway.ts'
import { untilTruthy } from '../helpers/poll.ts'

const REDIS = 'redis://127.0.0.1:6379'
const PREFIX = `portcullis-test:contract:${process.pid}:${Date.now()}:`
const opened: Store[] = []

function open(make: () => Store): Store {
  const s = make()
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

const app = (name: string, fields: Record<string, unknown> = {}): StoredApp =>
  toStoredApp(name, AppInput.parse({ key: `ak_${name}`, 'api-key': `secret-${name}`, ...fields }), new Date('2026-01-02T03:04:05Z'))

let runs = 0
const kinds: [string, () => Store][] = [
  ['memory', memoryStore],
  // A prefix per store under test: every case starts empty.
  ['redis', () => redisStore(REDIS, { prefix: `${PREFIX}${++runs}:` })],
]

describe.each(kinds)('%s store', (kind, make) => {
  test('claimOnce: true the first time, false while the claim lasts', async () => {
    const s = open(make)
    expect(await s.claimOnce('nonce-1', 60_000)).toBe(true)
    expect(await s.claimOnce('nonce-1', 60_000)).toBe(false)
    expect(await s.claimOnce('nonce-1', 60_000)).toBe(false)
  })

  test('claimOnce: a claim expires after its ttl', async () => {
    const s = open(make)
    const t0 = Date.now()
    expect(await s.claimOnce('short', 150)).toBe(true)
    expect(await s.claimOnce('short', 150)).toBe(false)
    await untilTruthy(() => s.claimOnce('short', 60_000))
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140)
    expect(await s.claimOnce('short', 60_000)).toBe(false)
  })

  test('claimOnce: keys are independent', async () => {
    const s = open(make)
    expect(await s.claimOnce('a', 60_000)).toBe(true)
    expect(await s.claimOnce('b', 60_000)).toBe(true)
    expect(await s.claimOnce('A', 60_000)).toBe(true)
    expect(await s.claimOnce('a', 60_000)).toBe(false)
  })

  test('apps: put says created, then replaced; get and list answer what was put', async () => {
    const s = open(make)
    expect(await s.apps.get('one')).toBeNull()
    expect(await s.apps.list()).toEqual([])
    expect(await s.apps.put(app('one'))).toBe(true)
    expect(await s.apps.put(app('two'))).toBe(true)
    const replaced = app('one', { tier: 'gold', meta: { code: 'X-1' } })
    expect(await s.apps.put(replaced)).toBe(false)
    expect(await s.apps.get('one')).toEqual(replaced)
    expect(await s.apps.get('One')).toBeNull()
    const names = (await s.apps.list()).map((a) => a.name).sort()
    expect(names).toEqual(['one', 'two'])
  })

  test('apps: the API key is kept only as its SHA-256', async () => {
    const s = open(make)
    await s.apps.put(app('hashed'))
    const got = (await s.apps.get('hashed'))!
    expect(got.apiKeySha256).toEqual([{ value: new Bun.CryptoHasher('sha256').update('secret-hashed').digest('hex') }])
    expect(JSON.stringify(got)).not.toContain('secret-hashed')
  })

  test('apps: delete is true for an app, false for a missing one', async () => {
    const s = open(make)
    await s.apps.put(app('gone'))
    expect(await s.apps.delete('gone')).toBe(true)
    expect(await s.apps.get('gone')).toBeNull()
    expect(await s.apps.delete('gone')).toBe(false)
    expect(await s.apps.delete('never')).toBe(false)
    expect(await s.apps.list()).toEqual([])
  })

  test('apps: watch hears {name} for put and delete; unsubscribe stops it', async () => {
    const s = open(make)
    const heard: AppChange[] = []
    const stop = s.apps.watch((c) => heard.push(c))
    await untilTruthy(() => s.live)
    await s.apps.put(app('watched'))
    await untilTruthy(() => heard.some((c) => 'name' in c && c.name === 'watched'))
    heard.length = 0
    await s.apps.delete('watched')
    await untilTruthy(() => heard.some((c) => 'name' in c && c.name === 'watched'))
    stop()
    heard.length = 0
    await s.apps.put(app('unheard'))
    await s.apps.delete('unheard')
    // Changes reach listeners in order: once a listener added now hears 'later', the removed
    // one would have heard 'unheard' already.
    const later: AppChange[] = []
    s.apps.watch((c) => later.push(c))
    await s.apps.put(app('later'))
    await untilTruthy(() => later.some((c) => 'name' in c && c.name === 'later'))
    expect(heard).toEqual([])
  })

  if (kind === 'redis') redisOnly()
})

function redisOnly(): void {
  test('watch: a second instance on the same prefix hears the changes (cross-instance)', async () => {
    const prefix = `${PREFIX}shared:`
    const a = open(() => redisStore(REDIS, { prefix }))
    const b = open(() => redisStore(REDIS, { prefix }))
    const heard: AppChange[] = []
    b.apps.watch((c) => heard.push(c))
    await untilTruthy(() => a.live && b.live)
    expect(await a.apps.put(app('cross'))).toBe(true)
    await untilTruthy(() => heard.some((c) => 'name' in c && c.name === 'cross'), 1_000)
    expect(await b.apps.get('cross')).toEqual(app('cross'))
    heard.length = 0
    expect(await a.apps.delete('cross')).toBe(true)
    await untilTruthy(() => heard.some((c) => 'name' in c && c.name === 'cross'), 1_000)
    expect(await b.apps.get('cross')).toBeNull()
  })

  test('another prefix is another store', async () => {
    const a = open(() => redisStore(REDIS, { prefix: `${PREFIX}left:` }))
    const b = open(() => redisStore(REDIS, { prefix: `${PREFIX}right:` }))
    expect(await a.claimOnce('same', 60_000)).toBe(true)
    expect(await b.claimOnce('same', 60_000)).toBe(true)
    await a.apps.put(app('only_left'))
    expect(await b.apps.get('only_left')).toBeNull()
  })

  test('records that do not validate, written straight into the hash, are skipped, not served', async () => {
    const prefix = `${PREFIX}foreign:`
    const s = open(() => redisStore(REDIS, { prefix }))
    await s.apps.put(app('good'))
    const r = new Redis(REDIS)
    try {
      await r.hset(`${prefix}apps`, {
        broken: '{"name": "broken", ',
        mislabelled: JSON.stringify(app('someone_else')),
        extra: JSON.stringify({ ...app('extra'), admin: true }),
        plainkey: JSON.stringify({ ...app('plainkey'), apiKeySha256: [{ value: 'not-a-hash' }] }),
      })
    } finally {
      await r.quit()
    }
    expect((await s.apps.list()).map((a) => a.name)).toEqual(['good'])
    for (const n of ['broken', 'mislabelled', 'extra', 'plainkey']) expect(await s.apps.get(n)).toBeNull()
  })

  test('a Redis that is not there: every call rejects with StoreUnavailable within about a second; not live', async () => {
    const port = await freePort()
    const s = open(() => redisStore(`redis://127.0.0.1:${port}`, { prefix: `${PREFIX}dead:` }))
    const t0 = Date.now()
    const calls = [s.ping(), s.claimOnce('n', 1_000), s.apps.get('x'), s.apps.list(), s.apps.put(app('x')), s.apps.delete('x')]
    const results = await Promise.allSettled(calls)
    expect(Date.now() - t0).toBeLessThan(1_300)
    for (const r of results) {
      expect(r.status).toBe('rejected')
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailable)
    }
    expect(s.live).toBe(false)
  })
}
