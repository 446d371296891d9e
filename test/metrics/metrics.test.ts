// Metrics: the Prometheus text of requests, latency histograms and counters; route handles
// that record without building label keys; worker snapshots added up by the primary.
import { describe, expect, test } from 'bun:test'
import { Metrics } from '../../src/metrics/metrics.ts'

const BOUNDS = ['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf']

function buckets(text: string, name: string, labels: string): number[] {
  return BOUNDS.map((le) => {
    const prefix = `${name}_bucket{${labels}${labels ? ',' : ''}le="${le}"} `
    const line = text.split('\n').find((l) => l.startsWith(prefix))
    if (line === undefined) throw new Error(`no ${prefix}in\n${text}`)
    return Number(line.slice(prefix.length))
  })
}

describe('the text', () => {
  test('requests by route, status and code; cumulative histogram buckets, sum and count', () => {
    const m = new Metrics()
    const seconds = [0.0005, 0.001, 0.003, 0.01, 0.7, 10, 12]
    for (const s of seconds) m.request('GET /a', 200, null, s, 'http://u1', s / 2)
    m.request('GET /a', 502, 'bad_gateway', 0.02, 'http://u1', null)
    m.request(null, 404, 'no_route', 0.0001, null, null)
    const text = m.render()
    expect(text).toContain('# TYPE gateway_requests_total counter\n')
    expect(text).toContain('\ngateway_requests_total{route="GET /a",status="200",code=""} 7\n')
    expect(text).toContain('\ngateway_requests_total{route="GET /a",status="502",code="bad_gateway"} 1\n')
    expect(text).toContain('\ngateway_requests_total{route="",status="404",code="no_route"} 1\n')
    // 0.0005 and 0.001 (a bound is inclusive), 0.003, 0.01, 0.02, 0.7, 10; 12 only in +Inf
    expect(buckets(text, 'gateway_request_duration_seconds', 'route="GET /a"')).toEqual([2, 2, 3, 4, 5, 5, 5, 5, 5, 6, 6, 6, 7, 8])
    expect(text).toContain(`\ngateway_request_duration_seconds_count{route="GET /a"} 8\n`)
    const sum = [...seconds, 0.02].reduce((a, b) => a + b, 0)
    expect(text).toContain(`\ngateway_request_duration_seconds_sum{route="GET /a"} ${sum}\n`)
    expect(buckets(text, 'gateway_request_duration_seconds', 'route=""')).toEqual(Array(14).fill(1))
    // the upstream answered 7 times with headers (half the time each); the 502 had no upstream time
    expect(buckets(text, 'gateway_upstream_duration_seconds', 'upstream="http://u1"')).toEqual([2, 3, 4, 4, 4, 4, 4, 4, 5, 5, 5, 6, 7, 7])
    expect(text).toContain('\ngateway_store_errors_total 0\n')
    expect(text).toContain('\ngateway_rate_limit_decisions_total 0\n')
    expect(text.endsWith('gateway_cache_lookups_total 0\n')).toBe(true)
  })

  test('error codes also count as throttled, auth failures and store errors', () => {
    const m = new Metrics()
    for (const code of ['rate_limited', 'quota_exceeded', 'unauthenticated', 'forbidden', 'forbidden', 'store_unavailable', 'constructor', null]) {
      m.request('GET /a', 400, code, 0.001, null, null)
    }
    m.inc('gateway_reloads_total')
    const text = m.render()
    // By route and code.
    expect(text).toContain('\ngateway_throttled_total{route="GET /a",code="rate_limited"} 1\n')
    expect(text).toContain('\ngateway_throttled_total{route="GET /a",code="quota_exceeded"} 1\n')
    expect(text).toContain('\ngateway_auth_failures_total{route="GET /a",code="unauthenticated"} 1\n')
    expect(text).toContain('\ngateway_auth_failures_total{route="GET /a",code="forbidden"} 2\n')
    expect(text).toContain('\ngateway_store_errors_total{route="GET /a",code="store_unavailable"} 1\n')
    expect(text).toContain('\ngateway_reloads_total 1\n')
    expect(text).toContain('\n# TYPE gateway_reloads_total counter\n')
  })

  test('label values are escaped', () => {
    const m = new Metrics()
    m.request('GET /a "b" \\ c\nd', 200, null, 0.001, null, null)
    expect(m.render()).toContain('gateway_requests_total{route="GET /a \\"b\\" \\\\ c\\nd",status="200",code=""} 1\n')
  })
})

describe('route handles', () => {
  test('one handle per route id, kept across calls; recording through it is the same as request()', () => {
    const a = new Metrics()
    const b = new Metrics()
    const handle = b.routeSeries('GET /a')
    expect(b.routeSeries('GET /a')).toBe(handle)
    expect(b.routeSeries(null)).toBe(b.routeSeries(null))
    const calls: [number, string | null, number, string | null, number | null][] = [
      [200, null, 0.002, 'http://u1', 0.001],
      [200, null, 0.3, 'http://u2', 0.2],
      [429, 'rate_limited', 0.0001, null, null],
      [200, null, 0.004, 'http://u1', 0.003],
    ]
    for (const c of calls) {
      a.request('GET /a', ...c)
      handle.record(...c)
    }
    expect(b.render()).toBe(a.render())
  })

  test('a handle that has recorded nothing adds no series', () => {
    const m = new Metrics()
    m.routeSeries(null)
    m.routeSeries('GET /quiet')
    expect(m.render()).toBe(new Metrics().render())
    expect(m.snapshot()).toEqual(new Metrics().snapshot())
  })
})

describe('snapshots', () => {
  test('a primary adding worker snapshots shows their sums; recording goes on after', () => {
    const w1 = new Metrics()
    const w2 = new Metrics()
    w1.request('GET /a', 200, null, 0.004, 'http://u1', 0.002)
    w1.request('GET /a', 200, null, 3, 'http://u1', 2)
    w2.request('GET /a', 200, null, 0.004, 'http://u1', 0.002)
    w2.request('GET /b', 403, 'forbidden', 0.0001, null, null)
    w2.inc('gateway_reloads_total')
    const snap = w1.snapshot()
    expect(snap.latency[0]![1].counts).toEqual([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2])
    const total = new Metrics()
    total.add(JSON.parse(JSON.stringify(snap)))
    total.add(JSON.parse(JSON.stringify(w2.snapshot())))
    const text = total.render()
    expect(text).toContain('\ngateway_requests_total{route="GET /a",status="200",code=""} 3\n')
    expect(text).toContain('\ngateway_requests_total{route="GET /b",status="403",code="forbidden"} 1\n')
    expect(buckets(text, 'gateway_request_duration_seconds', 'route="GET /a"')).toEqual([0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3])
    expect(text).toContain('\ngateway_auth_failures_total{route="GET /b",code="forbidden"} 1\n')
    expect(text).toContain('\ngateway_reloads_total 1\n')
    total.request('GET /a', 200, null, 0.0001, null, null)
    expect(total.render()).toContain('\ngateway_requests_total{route="GET /a",status="200",code=""} 4\n')
    expect(buckets(total.render(), 'gateway_request_duration_seconds', 'route="GET /a"')).toEqual([1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4])
  })
})
