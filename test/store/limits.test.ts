// Rate decisions (Store.hit), the same cases against the memory store, the real Redis
// (127.0.0.1:6379, a key prefix of this run's own, removed afterwards) and a local 3-master
// Redis Cluster started on free ports; two store instances on one Redis share the counts.
// Plus what only Redis can do: answer like the memory store, lose its scripts, keep its keys
// expiring, stop or freeze mid-traffic, and (a Cluster) keep one decision in one slot.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash, randomUUID } from 'node:crypto'
import Redis, { Cluster } from 'ioredis'
import { memoryStore } from '../../src/store/memory.ts'
import { MemoryLimits } from '../../src/store/memory-limits.ts'
import { systemNow } from '../../src/runtime/clock.ts'
import { redisStore } from '../../src/store/redis.ts'
import { batchArgs, HIT_SCRIPT, settleBatch, type PendingHit } from '../../src/store/redis-limits.ts'
import { StoreUnavailable, type LimitDecision, type LimitRule, type Store } from '../../src/store/store.ts'
import { startRedis, startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.ts'
import { untilTruthy } from '../helpers/poll.ts'

const REDIS = 'redis://127.0.0.1:6379'
const PREFIX = `portcullis-test:limits:${process.pid}:${Date.now()}:`

// A store kind under test: `open` gives another instance on the same shared state (the memory
// store has one: its one instance), `raw` a plain client for looking at the keys.
interface Backend {
  open(): Store
  raw: Redis | Cluster | null
  close(): Promise<void>
}

async function backend(kind: string): Promise<Backend> {
  const opened: Store[] = []
  const track = (s: Store) => (opened.push(s), s)
  if (kind === 'memory') {
    const only = memoryStore()
    return { open: () => only, raw: null, close: () => only.close() }
  }
  let cluster: RedisCluster | null = null
  let url = REDIS
  let raw: Redis | Cluster
  if (kind === 'cluster') {
    cluster = await startRedisCluster(3)
    url = cluster.url
    raw = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })))
  } else {
    raw = new Redis(REDIS)
  }
  return {
    open: () => track(redisStore(url, { prefix: PREFIX })),
    raw,
    async close() {
      await Promise.all(opened.map((s) => s.close()))
      if (!cluster) {
        const keys = await raw.keys(`${PREFIX}*`)
        if (keys.length) await raw.del(...keys)
      }
      raw.disconnect()
      await cluster?.stop()
    },
  }
}

// A fresh hash tag: every test counts under keys of its own.
const tag = () => `{${randomUUID()}}`
const sliding = (key: string, limit: number, windowMs: number): LimitRule => ({ kind: 'sliding', key, limit, windowMs })
const calendar = (key: string, limit: number, resetAt: number): LimitRule => ({ kind: 'calendar', key, limit, resetAt })
const hit = (s: Store, rules: LimitRule[]) => Promise.resolve().then(() => s.hit(rules, Date.now()))
const admittedCount = (ds: LimitDecision[]) => ds.filter((d) => d.admitted).length

// Admissions observed by the caller: each happened at some instant in [sent, received]. For
// every limit+1 of them, the last can only have been admitted `windowMs` after the first: the
// earliest possible last (the (limit+1)-th smallest `received` among those sent at or after
// `sent` of the first) minus that `sent` must be at least windowMs.
function tightestWindow(admissions: { sent: number; received: number }[], limit: number): number {
  let tightest = Infinity
  for (const a of admissions) {
    const later = admissions
      .filter((b) => b.sent >= a.sent)
      .map((b) => b.received)
      .sort((x, y) => x - y)
    if (later.length > limit) tightest = Math.min(tightest, later[limit]! - a.sent)
  }
  return tightest
}

// The script call's arguments and its reply, without a Redis: what the gateway writes and how
// it reads the answers back (the script itself is exercised against real Redis below).
describe('the rate script call', () => {
  const pendingHit = (list: string, n: number, out: (LimitDecision | Error)[]): PendingHit => ({
    rules: Array.from({ length: n }, (_, i) => sliding(`{a}:${list}:${i}`, 10, 1000)),
    keys: Array.from({ length: n }, (_, i) => `p:{a}:${list}:${i}`),
    list,
    peek: false,
    resolve: (d) => out.push(d),
    reject: (e) => out.push(e as Error),
  })

  test('one list: no per-decision index; two lists: one index per decision, each list written once', () => {
    const out: (LimitDecision | Error)[] = []
    const one = batchArgs([pendingHit('s,10,1000', 1, out), pendingHit('s,10,1000', 1, out)])
    expect(one).toEqual({ numKeys: 2, keysAndArgs: ['p:{a}:s,10,1000:0', 'p:{a}:s,10,1000:0', 's,10,1000'] })
    const two = batchArgs([pendingHit('L1', 1, out), pendingHit('L2', 2, out), pendingHit('L1', 1, out)])
    expect(two.numKeys).toBe(4)
    expect(two.keysAndArgs.slice(4)).toEqual(['L1|L2', '1', '2', '1'])
  })

  test('a reply of mixed lengths: admitted, refused (with retry-after) and a key of another type', () => {
    const out: (LimitDecision | Error)[] = []
    const batch = [pendingHit('A', 1, out), pendingHit('B', 2, out), pendingHit('A', 1, out), pendingHit('A', 1, out)]
    // admitted (count 3, reset 900) | refused by rule 2 after 250 ms (counts 1 and 10) | -1 | admitted
    settleBatch(batch, [0, 3, 900, 2, 250, 1, 800, 10, 250, -1, 0, 0, 1000])
    expect(out[0]).toEqual({ admitted: true, refusedBy: -1, remaining: [6], resetMs: [900], retryAfterMs: 0 })
    expect(out[1]).toEqual({ admitted: false, refusedBy: 1, remaining: [9, 0], resetMs: [800, 250], retryAfterMs: 250 })
    expect(out[2]).toBeInstanceOf(Error)
    expect((out[2] as Error).message).toContain('something else than a counter')
    expect(out[3]).toEqual({ admitted: true, refusedBy: -1, remaining: [9], resetMs: [1000], retryAfterMs: 0 })
  })

  test('a reply of another shape rejects every decision of the call and resolves none', () => {
    for (const reply of [[0, 3], [0, 3, 900, 0], [3, 1, 1, 1], [0.5, 1, 1], ['0', 1, 1], 'OK', null]) {
      const out: (LimitDecision | Error)[] = []
      settleBatch([pendingHit('A', 1, out)], reply)
      expect(out).toHaveLength(1)
      expect(out[0]).toBeInstanceOf(Error)
      expect((out[0] as Error).message).toContain('unexpected')
    }
  })
})

// A slot comes back exactly one window after its admission: not a microsecond sooner.
test('a 1 s window: the slot returns at t + 1000, not a moment before', () => {
  const limits = new MemoryLimits()
  const rules = [sliding('k', 1, 1_000)]
  expect(limits.hit(rules, 1_000.25).admitted).toBe(true)
  expect(limits.hit(rules, 2_000.249)).toMatchObject({ admitted: false, refusedBy: 0 })
  expect(limits.hit(rules, 2_000.25)).toMatchObject({ admitted: true, remaining: [0], resetMs: [1_000] })
})

// The gateway's clock: the wall clock with a fraction of a millisecond, moving forward.
test('systemNow: the wall clock to within a millisecond, with a fraction, never going back', () => {
  const readings = Array.from({ length: 2_000 }, () => systemNow())
  for (let i = 1; i < readings.length; i++) expect(readings[i]!).toBeGreaterThanOrEqual(readings[i - 1]!)
  expect(readings.some((t) => !Number.isInteger(t))).toBe(true)
  const before = Date.now()
  const t = systemNow()
  const after = Date.now()
  expect(t).toBeGreaterThan(before - 1)
  expect(t).toBeLessThan(after + 1)
})

describe.each(['memory', 'redis', 'cluster'])('%s store', (kind) => {
  let b: Backend
  beforeAll(async () => {
    b = await backend(kind)
  }, 30_000)
  afterAll(async () => {
    await b?.close()
  }, 30_000)

  test('limit 20: of 200 concurrent hits through two instances exactly 20 are admitted', async () => {
    const [one, two] = [b.open(), b.open()]
    const t = tag()
    for (const rules of [[sliding(`${t}:s`, 20, 60_000)], [calendar(`${t}:c`, 20, Date.now() + 60_000)]]) {
      const ds = await Promise.all(Array.from({ length: 200 }, (_, i) => hit(i % 2 ? one : two, rules)))
      expect(admittedCount(ds)).toBe(20)
      const remaining = ds.filter((d) => d.admitted).map((d) => d.remaining[0])
      expect(remaining.sort((x, y) => x! - y!)).toEqual(Array.from({ length: 20 }, (_, i) => i))
      for (const d of ds.filter((d) => !d.admitted)) expect(d).toMatchObject({ refusedBy: 0, remaining: [0] })
    }
  })

  test('a refused request is counted by none of its limits; refusedBy is the first that refused', async () => {
    const s = b.open()
    const t = tag()
    const full = sliding(`${t}:full`, 2, 60_000)
    const roomy = sliding(`${t}:roomy`, 10, 60_000)
    const quota = calendar(`${t}:quota`, 10, Date.now() + 60_000)
    expect(admittedCount([await hit(s, [full]), await hit(s, [full])])).toBe(2)
    for (let i = 0; i < 5; i++) expect(await hit(s, [roomy, full, quota])).toMatchObject({ admitted: false, refusedBy: 1, remaining: [10, 0, 10] })
    expect(await hit(s, [quota, roomy])).toMatchObject({ admitted: true, refusedBy: -1, remaining: [9, 9] })
    const fullQuota = calendar(`${t}:full-quota`, 1, Date.now() + 60_000)
    expect((await hit(s, [fullQuota])).admitted).toBe(true)
    expect(await hit(s, [fullQuota, full])).toMatchObject({ admitted: false, refusedBy: 0 })
    expect(await hit(s, [full, fullQuota])).toMatchObject({ admitted: false, refusedBy: 0 })
    expect(await hit(s, [roomy, quota])).toMatchObject({ admitted: true, remaining: [8, 8] })
  })

  test('a peek counts nothing: what is left, and whether a request would be admitted', async () => {
    const s = b.open()
    const t = tag()
    const rules = [sliding(`${t}:a`, 3, 60_000), calendar(`${t}:c`, 5, Date.now() + 60_000)]
    const peek = (rs: LimitRule[]) => Promise.resolve().then(() => s.peek(rs, Date.now()))
    expect(await peek(rules)).toMatchObject({ admitted: true, refusedBy: -1, remaining: [3, 5], retryAfterMs: 0 })
    // Peeks in the same turn as hits share their script call on Redis, counted apart.
    const mixed = await Promise.all([hit(s, rules), peek(rules), hit(s, rules), peek(rules), peek(rules)])
    expect(mixed.map((d) => d.remaining)).toEqual([
      [2, 4],
      [2, 4],
      [1, 3],
      [1, 3],
      [1, 3],
    ])
    expect(await hit(s, rules)).toMatchObject({ admitted: true, remaining: [0, 2] })
    const full = await peek(rules)
    expect(full).toMatchObject({ admitted: false, refusedBy: 0, remaining: [0, 2] })
    expect(full.retryAfterMs).toBeGreaterThan(50_000)
    expect(await hit(s, rules)).toMatchObject({ admitted: false, refusedBy: 0, remaining: [0, 2] })
    expect((await peek([sliding(`${t}:never`, 2, 1000)])).remaining).toEqual([2])
    if (b.raw) expect(await b.raw.exists(`${PREFIX}${t}:never`)).toBe(0)
  })

  test('an admitted request is counted by all of its limits', async () => {
    const s = b.open()
    const t = tag()
    const rules = [sliding(`${t}:a`, 5, 60_000), sliding(`${t}:b`, 3, 60_000), calendar(`${t}:c`, 4, Date.now() + 60_000)]
    const ds = []
    for (let i = 0; i < 4; i++) ds.push(await hit(s, rules))
    expect(ds.map((d) => d.remaining)).toEqual([
      [4, 2, 3],
      [3, 1, 2],
      [2, 0, 1],
      [2, 0, 1],
    ])
    expect(ds.map((d) => d.refusedBy)).toEqual([-1, -1, -1, 1])
  })

  test('a key given twice in one decision is one counter: checked against each limit, counted once', async () => {
    const s = b.open()
    const t = tag()
    const resetAt = Date.now() + 60_000
    // A tier of 3 and a cap of 5 on one key and window, a quota line given twice, and a key of
    // its own: every request counts once on each key.
    const rules = [
      sliding(`${t}:s`, 5, 60_000),
      sliding(`${t}:s`, 3, 60_000),
      calendar(`${t}:q`, 9, resetAt),
      calendar(`${t}:q`, 8, resetAt),
      sliding(`${t}:own`, 9, 60_000),
    ]
    const ds = []
    for (let i = 0; i < 4; i++) ds.push(await hit(s, rules))
    expect(ds.map((d) => d.remaining)).toEqual([
      [4, 2, 8, 7, 8],
      [3, 1, 7, 6, 7],
      [2, 0, 6, 5, 6],
      [2, 0, 6, 5, 6],
    ])
    expect(ds.map((d) => d.refusedBy)).toEqual([-1, -1, -1, 1])
    // The refused fourth was counted nowhere; the first rule alone still has two slots.
    expect(await hit(s, [sliding(`${t}:s`, 5, 60_000)])).toMatchObject({ admitted: true, remaining: [1] })
    if (b.raw) {
      expect(await b.raw.llen(`${PREFIX}${t}:s`)).toBe(4)
      expect(await b.raw.get(`${PREFIX}${t}:q`)).toBe('3')
    }
    // One log cannot be kept for two windows: such rules are a caller's mistake.
    const err = await hit(s, [sliding(`${t}:s`, 5, 60_000), sliding(`${t}:s`, 5, 1_000)]).then(
      () => null,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(RangeError)
    expect(String(err)).toContain('different windows')
  })

  test('sliding window: full until the oldest admission is windowMs old, then one slot frees', async () => {
    const s = b.open()
    const rules = [sliding(`${tag()}:s`, 3, 300)]
    const first = Date.now()
    for (let i = 0; i < 3; i++) expect((await hit(s, rules)).admitted).toBe(true)
    const refused = await hit(s, rules)
    expect(refused).toMatchObject({ admitted: false, refusedBy: 0, remaining: [0] })
    expect(refused.retryAfterMs).toBeGreaterThan(250)
    expect(refused.retryAfterMs).toBeLessThanOrEqual(300)
    expect(Math.abs(refused.resetMs[0]! - refused.retryAfterMs)).toBeLessThanOrEqual(2)
    const again = await untilTruthy(async () => ((await hit(s, rules)).admitted ? Date.now() : 0), 2_000)
    expect(again - first).toBeGreaterThanOrEqual(295)
    expect(again - first).toBeLessThan(600)
  })

  // Timed to the microsecond (the gateway's clock in memory, TIME's microseconds in Redis):
  // with whole milliseconds a slot could come back up to 1 ms early.
  test('a slot comes back a whole window after its admission, not a fraction of a millisecond sooner', async () => {
    const s = b.open()
    const windowMs = 20
    let shortest = Infinity
    for (let round = 0; round < 15; round++) {
      const rules = [sliding(`${tag()}:p`, 1, windowMs)]
      const sent = performance.now()
      expect((await s.hit(rules, systemNow())).admitted).toBe(true)
      for (;;) {
        const d = await s.hit(rules, systemNow())
        if (d.admitted) break
        if (performance.now() - sent > 1_000) throw new Error('the slot did not come back within 1 s')
      }
      shortest = Math.min(shortest, performance.now() - sent)
    }
    expect(shortest).toBeGreaterThanOrEqual(windowMs)
  })

  test('sliding window under continuous concurrent traffic: never more than the limit in any window', async () => {
    const [one, two] = [b.open(), b.open()]
    const limit = 5
    const windowMs = 200
    const rules = [sliding(`${tag()}:s`, limit, windowMs)]
    const admissions: { sent: number; received: number }[] = []
    const end = Date.now() + 900
    const loop = async (s: Store) => {
      while (Date.now() < end) {
        const sent = Date.now()
        const d = await s.hit(rules, sent)
        if (d.admitted) admissions.push({ sent, received: Date.now() })
        // The memory store answers without I/O: let the other loops and timers run.
        if (kind === 'memory') await Bun.sleep(0)
      }
    }
    await Promise.all([loop(one), loop(two), loop(one), loop(two)])
    expect(admissions.length).toBeGreaterThanOrEqual(3 * limit)
    expect(tightestWindow(admissions, limit)).toBeGreaterThanOrEqual(windowMs)
  })

  test('calendar window: the count resets at resetAt', async () => {
    const s = b.open()
    const key = `${tag()}:day`
    const resetAt = Date.now() + 300
    expect((await hit(s, [calendar(key, 2, resetAt)])).remaining).toEqual([1])
    expect((await hit(s, [calendar(key, 2, resetAt)])).remaining).toEqual([0])
    const refused = await hit(s, [calendar(key, 2, resetAt)])
    expect(refused).toMatchObject({ admitted: false, refusedBy: 0, remaining: [0] })
    expect(Math.abs(refused.retryAfterMs - (resetAt - Date.now()))).toBeLessThanOrEqual(10)
    expect(refused.resetMs).toEqual([refused.retryAfterMs])
    // The caller moves on to the next window when its clock passes resetAt.
    const next = await untilTruthy(async () => {
      const now = Date.now()
      const d = await s.hit([calendar(key, 2, now < resetAt ? resetAt : resetAt + 300)], now)
      return d.admitted ? { d, answeredAt: Date.now() } : null
    }, 2_000)
    // (Redis decides on its own clock, read after the caller's: the answer, not the question,
    // comes after resetAt.)
    expect(next.answeredAt).toBeGreaterThanOrEqual(resetAt)
    expect(next.d.remaining).toEqual([1])
  })

  test('keys with odd bytes are keys like any other, each its own count', async () => {
    const s = b.open()
    const t = randomUUID()
    const long = 'k'.repeat(10_240)
    const odd = ['{', '}', '{}', '}{', ':', '::', '\0', 'a\0b', 'a\0c', `{${t}\0}`, 'É', 'é', '🔑', '\r\n', ' ', long, `${long}x`, `{${long}}`]
    const keys = odd.map((k) => `${t}:${k}`)
    for (const key of keys) {
      const rules = [sliding(key, 2, 60_000)]
      expect((await s.hit(rules, Date.now())).remaining).toEqual([1])
    }
    for (const key of keys) {
      const rules = [sliding(key, 2, 60_000)]
      expect((await hit(s, rules)).remaining).toEqual([0])
      expect((await hit(s, rules)).admitted).toBe(false)
    }
    // Several odd keys in one decision, under one hash tag.
    const shared = `{${t}\0:}`
    const rules = odd.slice(0, 6).map((k, i) => (i % 2 ? sliding(`${shared}${k}`, 1, 60_000) : calendar(`${shared}${k}`, 1, Date.now() + 60_000)))
    expect((await hit(s, rules)).admitted).toBe(true)
    expect(await hit(s, rules)).toMatchObject({ admitted: false, refusedBy: 0 })
  })

  if (kind !== 'memory') redisOnly(kind, () => b)
})

function redisOnly(kind: string, get: () => Backend): void {
  test('answers like the memory store for the same sequence (remaining, resetMs, retryAfterMs)', async () => {
    const redis = get().open()
    const memory = memoryStore()
    // Connected before the first step: its time is the same for both stores.
    await redis.ping()
    const t = tag()
    const t0 = Date.now()
    const a = sliding(`${t}:a`, 3, 400)
    const q = calendar(`${t}:q`, 5, t0 + 2_000)
    const c = sliding(`${t}:c`, 2, 1_000)
    const steps: LimitRule[][] = [[a], [a, q], [q], [a, q, c], [a], [a, q], [c, q], [c], [q, c], [q], [q], [a, q]]
    const both = async (rules: LimitRule[]) => {
      const now = Date.now()
      const [m, r] = await Promise.all([memory.hit(rules, now), redis.hit(rules, now)])
      expect({ admitted: r.admitted, refusedBy: r.refusedBy, remaining: r.remaining }).toEqual({
        admitted: m.admitted,
        refusedBy: m.refusedBy,
        remaining: m.remaining,
      })
      for (let i = 0; i < rules.length; i++) expect(Math.abs(r.resetMs[i]! - m.resetMs[i]!)).toBeLessThanOrEqual(15)
      expect(Math.abs(r.retryAfterMs - m.retryAfterMs)).toBeLessThanOrEqual(15)
      return m
    }
    const answers = []
    for (const rules of steps) answers.push(await both(rules))
    expect(answers.filter((d) => !d.admitted).length).toBeGreaterThanOrEqual(3)
    // Past a's window (with a margin, so no store is at its edge): a frees, q and c do not.
    await Bun.sleep(Math.max(0, t0 + 400 + 60 - Date.now()))
    for (const rules of [[a], [a, q], [q, c], [a, c], [a], [a], [a]]) await both(rules)
  })

  test('keys live under the prefix and expire: sliding after windowMs, calendar at resetAt', async () => {
    const s = get().open()
    const raw = get().raw!
    const t = tag()
    const resetAt = Date.now() + 30_000
    await hit(s, [sliding(`${t}:s`, 5, 20_000), calendar(`${t}:c`, 5, resetAt)])
    const [sTtl, cTtl] = await Promise.all([raw.pttl(`${PREFIX}${t}:s`), raw.pttl(`${PREFIX}${t}:c`)])
    expect(sTtl).toBeGreaterThan(19_000)
    expect(sTtl).toBeLessThanOrEqual(20_000)
    expect(Math.abs(cTtl - (resetAt - Date.now()))).toBeLessThanOrEqual(50)
    expect(await raw.exists(`${t}:s`, `${t}:c`)).toBe(0)
    // A refused request leaves the expiry as it was.
    await hit(s, [calendar(`${t}:one`, 1, resetAt)])
    const before = await raw.pttl(`${PREFIX}${t}:one`)
    expect((await hit(s, [calendar(`${t}:one`, 1, resetAt + 60_000)])).admitted).toBe(false)
    expect(await raw.pttl(`${PREFIX}${t}:one`)).toBeLessThanOrEqual(before)
  })

  test('rules no store should be given are an error, not StoreUnavailable, and reach no Redis', async () => {
    const s = get().open()
    const t = tag()
    const cases: LimitRule[][] = [
      [sliding(`${t}:a`, 1, 1_000), sliding(`${tag()}:b`, 1, 1_000)],
      [sliding(`${t}:a`, 1, 1_000), sliding('no-tag', 1, 1_000)],
      [sliding(`${t}:a`, -1, 1_000)],
      [sliding(`${t}:a`, 1.5, 1_000)],
      [sliding(`${t}:a`, 1, 0)],
      [calendar(`${t}:a`, 1, Number.NaN)],
    ]
    for (const rules of cases) {
      const err = await hit(s, rules).then(
        () => null,
        (e: unknown) => e,
      )
      expect(err).toBeInstanceOf(Error)
      expect(err).not.toBeInstanceOf(StoreUnavailable)
    }
    expect(await get().raw!.exists(`${PREFIX}${t}:a`)).toBe(0)
  })

  test('decisions made together share a script call, each decided on its own; a key that is no counter fails only its own', async () => {
    const s = get().open()
    const raw = get().raw!
    // Many routes (tags) and one key holding a hash (a wrong type) among them, all in one turn.
    const tags = Array.from({ length: 12 }, () => tag())
    const bad = (t: string) => `${t}:bad`
    for (const t of tags) await raw.hset(`${PREFIX}${bad(t)}`, 'x', '1')
    const calls: Promise<LimitDecision | Error>[] = []
    for (let i = 0; i < 120; i++) {
      const t = tags[i % tags.length]!
      const rules = i % 40 === 0 ? [sliding(`${t}:ok`, 5, 60_000), sliding(bad(t), 5, 60_000)] : [sliding(`${t}:ok`, 5, 60_000)]
      calls.push(Promise.resolve(s.hit(rules, Date.now())).catch((e: Error) => e))
    }
    const results = await Promise.all(calls)
    const failed = results.filter((r) => r instanceof Error)
    expect(failed.length).toBe(3)
    for (const e of failed) {
      expect(e).not.toBeInstanceOf(StoreUnavailable)
      expect((e as Error).message).toContain('something else than a counter')
    }
    // Each tag: 10 calls; a failed one (tags 0, 4, 8) counted nothing: exactly 5 admitted.
    for (const t of tags) {
      const own = results.filter((r, i) => !(r instanceof Error) && tags[i % tags.length] === t) as LimitDecision[]
      expect(admittedCount(own)).toBe(5)
      expect(await raw.llen(`${PREFIX}${t}:ok`)).toBe(5)
    }
    for (const t of tags) expect(await raw.type(`${PREFIX}${bad(t)}`)).toBe('hash')
  })

  test('a list of something else than times is no counter: the decision fails, the list stays as it was', async () => {
    const s = get().open()
    const raw = get().raw!
    const t = tag()
    await raw.rpush(`${PREFIX}${t}:odd`, 'not-a-time', 'x')
    const err = await Promise.resolve(s.hit([sliding(`${t}:odd`, 5, 60_000)], Date.now())).catch((e: Error) => e)
    expect(err).toBeInstanceOf(Error)
    expect((err as Error).message).toContain('something else than a counter')
    expect(await raw.lrange(`${PREFIX}${t}:odd`, 0, -1)).toEqual(['not-a-time', 'x'])
  })

  test('NOSCRIPT: after SCRIPT FLUSH the next decision loads the script again and counts on', async () => {
    const s = get().open()
    const raw = get().raw!
    const rules = [sliding(`${tag()}:s`, 3, 60_000)]
    expect((await hit(s, rules)).remaining).toEqual([2])
    const nodes = raw instanceof Cluster ? raw.nodes('master') : [raw]
    const loaded = async () =>
      (await Promise.all(nodes.map((n) => n.script('EXISTS', sha) as Promise<number[]>))).flat().filter((e) => e === 1).length
    const sha = createHash('sha1').update(HIT_SCRIPT).digest('hex')
    expect(await loaded()).toBeGreaterThanOrEqual(1)
    await Promise.all(nodes.map((n) => n.script('FLUSH')))
    expect(await loaded()).toBe(0)
    expect((await hit(s, rules)).remaining).toEqual([1])
    expect((await hit(s, rules)).remaining).toEqual([0])
    expect((await hit(s, rules)).admitted).toBe(false)
  })

  if (kind === 'cluster') clusterOnly(get)
  else outage()
}

function clusterOnly(get: () => Backend): void {
  test('each decision runs in the slot of its hash tag; tags spread over every master', async () => {
    const raw = get().raw as Cluster
    const s = get().open()
    const masters = new Set<string>()
    for (let i = 0; i < 40; i++) {
      const t = tag()
      const rules = [sliding(`${t}:s`, 2, 60_000), calendar(`${t}:day`, 2, Date.now() + 60_000), sliding(`${t}:route\0x`, 2, 60_000)]
      expect((await hit(s, rules)).admitted).toBe(true)
      const slots = new Set(await Promise.all(rules.map((r) => raw.cluster('KEYSLOT', PREFIX + r.key))))
      expect(slots.size).toBe(1)
      const [slot] = slots
      const owner = (await raw.cluster('SLOTS')).find(([from, to]) => Number(slot) >= from && Number(slot) <= to)!
      masters.add(String(owner[2]))
      // The keys are on that node, counted.
      expect(await raw.exists(...rules.map((r) => PREFIX + r.key))).toBe(3)
    }
    expect(masters.size).toBe(3)
  })
}

// Until the store answers its ping (a Redis just started may still be connecting).
const untilAnswers = (s: Store) =>
  untilTruthy(
    () =>
      s.ping().then(
        () => true,
        () => false,
      ),
    2_000,
  )

function outage(): void {
  // On a Redis of its own, so that its command counts are this test's alone. Redis counts the
  // commands a script runs in INFO commandstats.
  test('a refused decision writes nothing: no RPUSH, PEXPIRE, INCR or LPOP (times still in their window)', async () => {
    const server = await startRedis()
    const s = redisStore(server.url, { prefix: PREFIX })
    const raw = new Redis(server.url)
    try {
      await untilAnswers(s)
      const t = tag()
      const full = sliding(`${t}:full`, 2, 60_000)
      const quota = calendar(`${t}:quota`, 1, Date.now() + 60_000)
      const free = sliding(`${t}:free`, 100, 60_000)
      expect((await hit(s, [full])).admitted).toBe(true)
      expect((await hit(s, [full])).admitted).toBe(true)
      expect((await hit(s, [quota])).admitted).toBe(true)
      const writes = async () => {
        const stats = await raw.info('commandstats')
        return Object.fromEntries(
          ['rpush', 'pexpire', 'pexpireat', 'incr', 'lpop'].map((c) => [
            c,
            Number(new RegExp(`^cmdstat_${c}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? 0),
          ]),
        )
      }
      const before = await writes()
      expect(before.rpush).toBe(2) // the counted requests did write
      // Refused by the full window, by the used-up quota, and by the full window alongside a
      // limit with room: none of them counts anywhere.
      const refused = await Promise.all([hit(s, [full]), hit(s, [quota]), hit(s, [free, full]), hit(s, [quota, free])])
      expect(refused.map((d) => d.admitted)).toEqual([false, false, false, false])
      expect(await writes()).toEqual(before)
      expect(await raw.llen(`${PREFIX}${t}:free`)).toBe(0)
    } finally {
      raw.disconnect()
      await s.close()
      await server.stop()
    }
  }, 20_000)

  test('a Redis that stops mid-traffic: hits reject with StoreUnavailable within 1 s, then work again by themselves', async () => {
    const server = await startRedis()
    const s = redisStore(server.url, { prefix: PREFIX })
    try {
      const rules = [sliding(`${tag()}:s`, 1_000_000, 60_000)]
      await untilAnswers(s)
      let stopped = 0
      const failures: { at: number; ms: number; err: unknown }[] = []
      let admitted = 0
      // Ten requests in flight at all times, until ten have failed after the stop.
      const traffic = async () => {
        while (failures.length < 10) {
          const sent = Date.now()
          try {
            if ((await s.hit(rules, sent)).admitted) admitted++
            if (stopped && sent > stopped) throw new Error('a hit succeeded after the server was killed')
          } catch (err) {
            failures.push({ at: Date.now(), ms: Date.now() - sent, err })
          }
        }
      }
      const running = Array.from({ length: 10 }, traffic)
      await untilTruthy(() => admitted >= 50, 2_000)
      const killing = Date.now()
      await server.kill()
      stopped = Date.now()
      await Promise.all(running)
      for (const f of failures) {
        expect(f.at).toBeGreaterThanOrEqual(killing)
        expect(f.err).toBeInstanceOf(StoreUnavailable)
        expect(f.ms).toBeLessThan(1_000)
      }
      await server.restart()
      const back = await untilTruthy(() => hit(s, rules).catch(() => null), 5_000)
      expect(back.admitted).toBe(true)
      // Counting exactly again (the restarted server kept nothing).
      const fresh = [sliding(`${tag()}:s`, 5, 60_000)]
      expect(admittedCount(await Promise.all(Array.from({ length: 20 }, () => hit(s, fresh))))).toBe(5)
    } finally {
      await s.close()
      await server.stop()
    }
  }, 20_000)

  test('a Redis that freezes (SIGSTOP): hits reject with StoreUnavailable within 1 s; once it thaws they work', async () => {
    const server = await startRedis()
    const s = redisStore(server.url, { prefix: PREFIX })
    try {
      const rules = [sliding(`${tag()}:s`, 5, 60_000)]
      await untilAnswers(s)
      expect((await hit(s, rules)).admitted).toBe(true)
      server.freeze()
      const t0 = Date.now()
      const results = await Promise.allSettled(Array.from({ length: 5 }, () => hit(s, rules)))
      expect(Date.now() - t0).toBeLessThan(1_000)
      for (const r of results) expect(r.status === 'rejected' && r.reason).toBeInstanceOf(StoreUnavailable)
      server.thaw()
      const back = await untilTruthy(() => hit(s, [sliding(`${tag()}:s`, 5, 60_000)]).catch(() => null), 5_000)
      expect(back.admitted).toBe(true)
    } finally {
      await s.close()
      await server.stop()
    }
  }, 20_000)
}
