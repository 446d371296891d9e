// Prometheus text exposition of the gateway's counters and histograms.
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

class Histogram {
  readonly counts = new Array<number>(BUCKETS.length).fill(0)
  sum = 0
  count = 0
  observe(seconds: number): void {
    this.sum += seconds
    this.count++
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) this.counts[i]!++
  }
}

function labels(obj: Record<string, string>): string {
  const parts = Object.entries(obj).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
  return parts.length ? `{${parts.join(',')}}` : ''
}

type Labelled<T> = { labels: Record<string, string> } & T
export interface MetricsSnapshot {
  requests: [string, Labelled<{ n: number }>][]
  latency: [string, Labelled<{ counts: number[]; sum: number; count: number }>][]
  upstreamLatency: [string, Labelled<{ counts: number[]; sum: number; count: number }>][]
  counters: [string, number][]
}

export class Metrics {
  private readonly requests = new Map<string, { labels: Record<string, string>; n: number }>()
  private readonly latency = new Map<string, { labels: Record<string, string>; h: Histogram }>()
  private readonly upstreamLatency = new Map<string, { labels: Record<string, string>; h: Histogram }>()
  private readonly counters = new Map<string, number>()

  request(route: string | null, status: number, code: string | null, seconds: number, upstream: string | null, upstreamSeconds: number | null): void {
    const r = route ?? ''
    const key = `${r}\0${status}\0${code ?? ''}`
    const c = this.requests.get(key)
    if (c) c.n++
    else this.requests.set(key, { labels: { route: r, status: String(status), code: code ?? '' }, n: 1 })
    this.hist(this.latency, r, { route: r }).observe(seconds)
    if (upstream && upstreamSeconds !== null) this.hist(this.upstreamLatency, upstream, { upstream }).observe(upstreamSeconds)
    if (code === 'rate_limited' || code === 'quota_exceeded') this.inc('gateway_throttled_total')
    if (code === 'unauthenticated' || code === 'forbidden') this.inc('gateway_auth_failures_total')
    if (code === 'store_unavailable') this.inc('gateway_store_errors_total')
  }

  inc(name: string, by = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + by)
  }

  private hist(map: Map<string, { labels: Record<string, string>; h: Histogram }>, key: string, l: Record<string, string>): Histogram {
    let e = map.get(key)
    if (!e) map.set(key, (e = { labels: l, h: new Histogram() }))
    return e.h
  }

  // Worker processes send snapshots to the primary, which adds them up for /metrics.
  snapshot(): MetricsSnapshot {
    const hists = (m: Map<string, { labels: Record<string, string>; h: Histogram }>) =>
      [...m].map(
        ([k, { labels: l, h }]) =>
          [k, { labels: l, counts: [...h.counts], sum: h.sum, count: h.count }] as [
            string,
            Labelled<{ counts: number[]; sum: number; count: number }>,
          ],
      )
    return {
      requests: [...this.requests].map(([k, v]) => [k, { ...v }]),
      latency: hists(this.latency),
      upstreamLatency: hists(this.upstreamLatency),
      counters: [...this.counters],
    }
  }

  add(s: MetricsSnapshot): void {
    for (const [k, v] of s.requests) {
      const c = this.requests.get(k)
      if (c) c.n += v.n
      else this.requests.set(k, { labels: v.labels, n: v.n })
    }
    const addHists = (into: Map<string, { labels: Record<string, string>; h: Histogram }>, from: MetricsSnapshot['latency']) => {
      for (const [k, v] of from) {
        const h = this.hist(into, k, v.labels)
        v.counts.forEach((n, i) => (h.counts[i]! += n))
        h.sum += v.sum
        h.count += v.count
      }
    }
    addHists(this.latency, s.latency)
    addHists(this.upstreamLatency, s.upstreamLatency)
    for (const [k, n] of s.counters) this.inc(k, n)
  }

  render(): string {
    const out: string[] = []
    out.push('# HELP gateway_requests_total Requests answered, by route, status and gateway error code.', '# TYPE gateway_requests_total counter')
    for (const { labels: l, n } of this.requests.values()) out.push(`gateway_requests_total${labels(l)} ${n}`)
    this.renderHist(out, 'gateway_request_duration_seconds', 'Time from request to response headers.', this.latency)
    this.renderHist(out, 'gateway_upstream_duration_seconds', 'Time an upstream took to answer with headers.', this.upstreamLatency)
    for (const name of [
      'gateway_reloads_total',
      'gateway_reload_failures_total',
      'gateway_throttled_total',
      'gateway_auth_failures_total',
      'gateway_store_errors_total',
    ]) {
      out.push(`# TYPE ${name} counter`, `${name} ${this.counters.get(name) ?? 0}`)
    }
    return `${out.join('\n')}\n`
  }

  private renderHist(out: string[], name: string, help: string, map: Map<string, { labels: Record<string, string>; h: Histogram }>): void {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`)
    for (const { labels: l, h } of map.values()) {
      BUCKETS.forEach((b, i) => out.push(`${name}_bucket${labels({ ...l, le: String(b) })} ${h.counts[i]}`))
      out.push(`${name}_bucket${labels({ ...l, le: '+Inf' })} ${h.count}`, `${name}_sum${labels(l)} ${h.sum}`, `${name}_count${labels(l)} ${h.count}`)
    }
  }
}
