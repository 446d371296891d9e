// The traffic history's arithmetic: quantiles from bucket counts, per-second deltas, the ring.
import { expect, test } from 'bun:test'
import { BUCKETS, labelsOfKey, Metrics, type TrafficTotals } from '../../src/metrics/metrics.ts'
import { HISTORY_SECONDS, pointOf, quantileMs, TrafficHistory } from '../../src/server/traffic.ts'

const counts = (byBound: Record<number, number>) => [...BUCKETS, Infinity].map((b) => byBound[b] ?? 0)

test('quantiles interpolate within a bucket, in ms; none without requests; the last bound above it', () => {
  expect(quantileMs(0.5, counts({}))).toBeNull()
  // 10 requests in (0, 1 ms]: the median is half way.
  expect(quantileMs(0.5, counts({ 0.001: 10 }))).toBe(0.5)
  // 50 in (0, 1 ms], 50 in (5, 10 ms]: p50 closes the first bucket, p99 is 98% through the second.
  expect(quantileMs(0.5, counts({ 0.001: 50, 0.01: 50 }))).toBe(1)
  expect(quantileMs(0.99, counts({ 0.001: 50, 0.01: 50 }))).toBe(9.9)
  expect(quantileMs(0.99, counts({ 0.001: 1, [Infinity]: 99 }))).toBe(10_000)
})

test('a point is the increase since the last totals; a total that went down counts as none', () => {
  const totals = (requests: number, refused: number, auth: number): TrafficTotals => ({
    requests,
    errors: new Map([['rate_limited', refused]]),
    statuses: new Map([['2xx', requests - refused]]),
    latency: counts({ 0.001: requests }),
    throttled: new Map([['app_a\0GET /m', refused]]),
    auth: new Map([['\0GET /p\0unauthenticated', auth]]),
  })
  const p = pointOf(5_000, totals(10, 3, 2), totals(4, 1, 2))
  expect(p).toEqual({
    t: 5_000,
    requests: 6,
    errors: { rate_limited: 2 },
    statuses: { '2xx': 4 },
    p50_ms: 0.5,
    p99_ms: 0.99,
    throttled: [{ app: 'app_a', route: 'GET /m', n: 2 }],
    auth_failures: [],
  })
  const fell = pointOf(6_000, totals(1, 0, 0), totals(10, 3, 2))
  expect([fell.requests, fell.errors, fell.throttled]).toEqual([0, {}, []])
})

test('Metrics.traffic sums routes; throttled and auth failures by app and route from the labelled counters', () => {
  const m = new Metrics()
  m.request('GET /a', 200, null, 0.002, null, null)
  m.request('GET /b', 429, 'rate_limited', 0.002, null, null)
  m.request(null, 404, 'no_route', 0.0005, null, null)
  m.incLabelled('gateway_rate_limit_decisions_total', { route: 'GET /b', app: 'x"y', tier: '', result: 'refused' })
  m.incLabelled('gateway_rate_limit_decisions_total', { route: 'GET /b', app: 'x"y', tier: '', result: 'admitted' }, 5)
  m.incLabelled('gateway_auth_failures_by_app_total', { route: 'GET /c', app: '', code: 'forbidden' }, 2)
  const t = m.traffic()
  expect(t.requests).toBe(3)
  expect(Object.fromEntries(t.errors)).toEqual({ rate_limited: 1, no_route: 1 })
  expect(Object.fromEntries(t.statuses)).toEqual({ '2xx': 1, '4xx': 2 })
  expect(t.latency.reduce((a, b) => a + b, 0)).toBe(3)
  expect([...t.throttled]).toEqual([['x"y\0GET /b', 1]])
  expect([...t.auth]).toEqual([['\0GET /c\0forbidden', 2]])
  // The same from a worker's snapshot, added up in the primary.
  const primary = new Metrics()
  primary.add(m.snapshot())
  primary.add(m.snapshot())
  expect(primary.snapshotsAdded).toBe(2)
  expect(primary.traffic().requests).toBe(6)
  expect([...primary.traffic().throttled]).toEqual([['x"y\0GET /b', 2]])
})

test('labelsOfKey undoes the exposition escapes', () => {
  expect(labelsOfKey('n{a="1",b="x\\"y\\\\z",c="l1\\nl2"}')).toEqual({ a: '1', b: 'x"y\\z', c: 'l1\nl2' })
  expect(labelsOfKey('n')).toEqual({})
})

test('the ring keeps the last 15 minutes, oldest first, and tells subscribers each point', () => {
  let requests = 0
  let now = 0
  const read = (): TrafficTotals => ({ requests, errors: new Map(), statuses: new Map(), latency: counts({}), throttled: new Map(), auth: new Map() })
  const h = new TrafficHistory(read, () => now)
  try {
    const seen: number[] = []
    const leave = h.subscribe((p) => seen.push(p.requests))
    for (let i = 1; i <= HISTORY_SECONDS + 5; i++) {
      requests += i
      now = i * 1000
      h.sample()
    }
    expect(seen).toHaveLength(HISTORY_SECONDS + 5)
    leave()
    expect(h.subscribers).toBe(0)
    const all = h.recent(HISTORY_SECONDS * 2)
    expect(all).toHaveLength(HISTORY_SECONDS)
    expect(all[0]).toMatchObject({ t: 6_000, requests: 6 })
    expect(all.at(-1)).toMatchObject({ t: (HISTORY_SECONDS + 5) * 1000, requests: HISTORY_SECONDS + 5 })
    expect(h.recent(2).map((p) => p.requests)).toEqual([HISTORY_SECONDS + 4, HISTORY_SECONDS + 5])
  } finally {
    h.stop()
  }
})
