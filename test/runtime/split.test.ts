// `proxy split` at request time: the sticky hash is pinned (changing it would move every sticky
// caller to another side on upgrade), spreads keys evenly, and a side with no target in the
// rotation passes its share on in proportion.
import { describe, expect, test } from 'bun:test'
import { BUCKETS, bucketOf, cookieValue, splitPicker } from '../../src/runtime/split.ts'
import type { RequestContext } from '../../src/runtime/context.ts'
import type { UpstreamPool } from '../../src/runtime/upstream.ts'

describe('bucketOf', () => {
  test('is pinned: the same key gives the same bucket on every instance and version', () => {
    expect(['', 'a', 'partner_a', 'session-1', 'ü-ñ'].map(bucketOf)).toEqual([8923, 1715, 6005, 8235, 1590])
  })

  test('spreads similar keys evenly over the buckets (each tenth within 6σ of 10,000 keys)', () => {
    const n = 100_000
    const tenths = new Array<number>(10).fill(0)
    for (let i = 0; i < n; i++) tenths[Math.floor((bucketOf(`user-${i}`) * 10) / BUCKETS)]!++
    const sigma = Math.sqrt(n * 0.1 * 0.9)
    for (const c of tenths) expect(Math.abs(c - n / 10)).toBeLessThan(6 * sigma)
  })
})

test('cookieValue finds one cookie among several', () => {
  expect(cookieValue('a=1; sid=xyz; b=2', 'sid')).toBe('xyz')
  expect(cookieValue('sid=first;sid=second', 'sid')).toBe('first')
  expect(cookieValue('xsid=1; sidx=2', 'sid')).toBeUndefined()
  expect(cookieValue(null, 'sid')).toBeUndefined()
  expect(cookieValue('flag; sid=', 'sid')).toBe('')
})

describe('splitPicker', () => {
  const ctx = {} as RequestContext
  // A pool of one target whose availability the test sets.
  const pool = (name: string) => {
    const state = { up: true, ejectedUntil: 0 }
    return { pool: { name, targets: [{ state }] } as unknown as UpstreamPool, state }
  }

  test('a sticky key picks the side its bucket falls in', () => {
    const a = pool('a')
    const b = pool('b')
    let key = ''
    const pick = splitPicker(
      [
        { share: 2500, pool: a.pool },
        { share: 7500, pool: b.pool },
      ],
      () => key,
    )
    for (let i = 0; i < 200; i++) {
      key = `k${i}`
      expect(pick(ctx)).toBe(bucketOf(key) < 2500 ? 0 : 1)
    }
  })

  test('a side out of the rotation passes its buckets to the others in proportion, the same key to the same side', () => {
    const [a, b, c] = [pool('a'), pool('b'), pool('c')]
    let key = ''
    const pick = splitPicker(
      [
        { share: 5000, pool: a.pool },
        { share: 2500, pool: b.pool },
        { share: 2500, pool: c.pool },
      ],
      () => key,
    )
    a.state.up = false
    const counts = [0, 0, 0]
    for (let i = 0; i < 20_000; i++) {
      key = `k${i}`
      const side = pick(ctx)
      counts[side]!++
      expect(pick(ctx)).toBe(side)
    }
    expect(counts[0]).toBe(0)
    // b and c share a's half equally: each about half of all (6σ bounds).
    const sigma = Math.sqrt(20_000 * 0.5 * 0.5)
    expect(Math.abs(counts[1]! - 10_000)).toBeLessThan(6 * sigma)
    expect(counts[1]! + counts[2]!).toBe(20_000)
    // Every side down: the bucket's own side (its pool then tries anyway).
    b.state.up = false
    c.state.ejectedUntil = performance.now() + 60_000
    key = 'k1'
    const own = bucketOf('k1') < 5000 ? 0 : bucketOf('k1') < 7500 ? 1 : 2
    expect(pick(ctx)).toBe(own)
  })

  test('without a key, each request draws by share', () => {
    const pick = splitPicker(
      [
        { share: 9000, pool: pool('a').pool },
        { share: 1000, pool: pool('b').pool },
      ],
      () => undefined,
    )
    let b = 0
    const n = 50_000
    for (let i = 0; i < n; i++) b += pick(ctx)
    expect(Math.abs(b - n * 0.1)).toBeLessThan(6 * Math.sqrt(n * 0.1 * 0.9))
  })
})
