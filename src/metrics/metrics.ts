// Prometheus text exposition of the gateway's counters and histograms.
export const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

// Counts per bucket (not cumulative) while recording, so an observation touches one slot;
// snapshots and /metrics give the cumulative counts Prometheus expects.
class Histogram {
  readonly counts = new Array<number>(BUCKETS.length + 1).fill(0) // the last slot is above 10 s
  sum = 0
  count = 0
  observe(seconds: number): void {
    this.sum += seconds
    this.count++
    let i = 0
    while (i < BUCKETS.length && !(seconds <= BUCKETS[i]!)) i++
    this.counts[i]!++
  }
  cumulative(): number[] {
    const out = new Array<number>(BUCKETS.length)
    let n = 0
    for (let i = 0; i < BUCKETS.length; i++) out[i] = n += this.counts[i]!
    return out
  }
  addCumulative(counts: number[], sum: number, count: number): void {
    let below = 0
    for (let i = 0; i < BUCKETS.length; i++) {
      this.counts[i]! += counts[i]! - below
      below = counts[i]!
    }
    this.counts[BUCKETS.length]! += count - below
    this.sum += sum
    this.count += count
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
  // Read from their collectors when the snapshot was taken (absent from older workers).
  collected?: { name: string; type: FamilyType; help: string; samples: Sample[] }[]
  // Counter families a worker described ([name, help]) beyond the built-in ones: their
  // counters are in `counters` (e.g. the span counts of tracing, which only workers do).
  described?: [string, string][]
}

// A value read when /metrics is asked for (a gauge, or a counter kept elsewhere).
export interface Sample {
  labels: Record<string, string>
  value: number
}

type FamilyType = 'counter' | 'gauge'
interface Family {
  type: FamilyType
  help: string
  collect?: () => Iterable<Sample>
}

// The families /metrics always shows (a counter with no series yet shows 0), in this order.
const BUILT_IN: [string, Family][] = [
  [
    'gateway_reloads_total',
    { type: 'counter', help: 'Policy reloads by result: applied, rejected (the checks failed), failed (the files could not be read).' },
  ],
  ['gateway_throttled_total', { type: 'counter', help: 'Requests refused by throttle or quota, by route and code.' }],
  ['gateway_auth_failures_total', { type: 'counter', help: 'Requests refused as unauthenticated or forbidden, by route and code.' }],
  [
    'gateway_auth_failures_by_app_total',
    { type: 'counter', help: 'Requests refused as unauthenticated or forbidden, by route, app (empty when none was identified) and code.' },
  ],
  ['gateway_store_errors_total', { type: 'counter', help: 'Requests answered store_unavailable, by route and code.' }],
  ['gateway_rate_limit_decisions_total', { type: 'counter', help: 'Rate decisions by route, app, tier and result.' }],
  [
    'gateway_cache_lookups_total',
    { type: 'counter', help: 'cache response lookups by route and result: hit, miss, error (the store did not answer; the upstream answered).' },
  ],
]

// Totals since start, read once a second for the admin API's traffic history (server/traffic.ts).
export interface TrafficTotals {
  requests: number
  errors: Map<string, number> // by gateway error code
  statuses: Map<string, number> // by class: 2xx, 4xx, …
  latency: number[] // request durations per bucket (BUCKETS, then above the last), not cumulative
  throttled: Map<string, number> // refused rate decisions by `app\0route`
  auth: Map<string, number> // auth failures by `app\0route\0code`
}

const THROTTLED_PREFIX = 'gateway_rate_limit_decisions_total{'
const AUTH_BY_APP_PREFIX = 'gateway_auth_failures_by_app_total{'

// The labels of a counter's exposition name (`name{a="1",b="x\"y"}`), undoing labels()'s escapes.
export function labelsOfKey(key: string): Record<string, string> {
  const out: Record<string, string> = {}
  const re = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g
  const open = key.indexOf('{')
  if (open === -1) return out
  re.lastIndex = open
  for (let m = re.exec(key); m !== null; m = re.exec(key)) out[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
  return out
}

type Series = { labels: Record<string, string>; n: number }
type HistSeries = { labels: Record<string, string>; h: Histogram }
// One status and code of a route: its counter, and the counter an error code also adds to.
type Cell = { series: Series; also: string | null }

const ALSO = new Map([
  ['rate_limited', 'gateway_throttled_total'],
  ['quota_exceeded', 'gateway_throttled_total'],
  ['unauthenticated', 'gateway_auth_failures_total'],
  ['forbidden', 'gateway_auth_failures_total'],
  ['store_unavailable', 'gateway_store_errors_total'],
])

// Everything one route records per request, found without building a label key once a
// status and code have been seen.
export class RouteSeries {
  private readonly cells = new Map<number, Map<string | null, Cell>>()
  private latency: Histogram | null = null // made on the first request: no empty series

  constructor(
    private readonly metrics: Metrics,
    private readonly route: string,
  ) {}

  record(status: number, code: string | null, seconds: number, upstream: string | null, upstreamSeconds: number | null): void {
    let byCode = this.cells.get(status)
    if (byCode === undefined) this.cells.set(status, (byCode = new Map()))
    let cell = byCode.get(code)
    if (cell === undefined) byCode.set(code, (cell = this.metrics.cell(this.route, status, code)))
    cell.series.n++
    const latency = this.latency ?? (this.latency = this.metrics.latencyHistogram(this.route))
    latency.observe(seconds)
    if (upstream !== null && upstreamSeconds !== null) this.metrics.upstreamHistogram(upstream).observe(upstreamSeconds)
    if (cell.also !== null) this.metrics.inc(cell.also)
  }
}

const BUILT_IN_NAMES = new Set(BUILT_IN.map(([name]) => name))

export class Metrics {
  private readonly families = new Map<string, Family>(BUILT_IN)
  // Samples added from workers' snapshots, by family and label set (the primary sums them).
  private readonly added = new Map<string, Map<string, Sample>>()
  private readonly requests = new Map<string, Series>()
  private readonly latency = new Map<string, HistSeries>()
  private readonly upstreamLatency = new Map<string, HistSeries>()
  private readonly counters = new Map<string, number>()
  private readonly routes = new Map<string, RouteSeries>()
  // Worker snapshots added (the --workers primary counts the workers that reported).
  snapshotsAdded = 0

  // The per-request handle of a route (null: requests that matched none); ids outlive reloads.
  routeSeries(route: string | null): RouteSeries {
    const r = route ?? ''
    let s = this.routes.get(r)
    if (s === undefined) this.routes.set(r, (s = new RouteSeries(this, r)))
    return s
  }

  request(route: string | null, status: number, code: string | null, seconds: number, upstream: string | null, upstreamSeconds: number | null): void {
    this.routeSeries(route).record(status, code, seconds, upstream, upstreamSeconds)
  }

  cell(route: string, status: number, code: string | null): Cell {
    const key = `${route}\0${status}\0${code ?? ''}`
    let series = this.requests.get(key)
    if (series === undefined) this.requests.set(key, (series = { labels: { route, status: String(status), code: code ?? '' }, n: 0 }))
    // The other counter this code adds to, by route and code (its key is the exposition name).
    const also = code === null ? undefined : ALSO.get(code)
    return { series, also: also === undefined ? null : `${also}${labels({ route, code: code! })}` }
  }

  latencyHistogram(route: string): Histogram {
    return this.hist(this.latency, route, 'route')
  }

  upstreamHistogram(upstream: string): Histogram {
    return this.hist(this.upstreamLatency, upstream, 'upstream')
  }

  // A counter with labels (the series key is its exposition name). The name with its label
  // values is made once per combination: requests repeat them.
  private readonly labelled = new Map<string, string>()
  incLabelled(name: string, l: Record<string, string>, by = 1): void {
    let id = `${name}\0`
    for (const k in l) id += `${l[k]}\0`
    let key = this.labelled.get(id)
    if (key === undefined) {
      key = `${name}${labels(l)}`
      if (this.labelled.size < 65_536) this.labelled.set(id, key)
    }
    this.inc(key, by)
  }

  // A family whose values are read at exposition time (gauges; counters kept elsewhere, such
  // as an upstream target's attempts). A later call for the same name replaces the collector.
  collect(name: string, type: FamilyType, help: string, collect: () => Iterable<Sample>): void {
    this.families.set(name, { type, help, collect })
  }

  // A counter family incremented with inc/incLabelled: its HELP, and a 0 before the first series.
  describe(name: string, help: string): void {
    if (!this.families.has(name)) this.families.set(name, { type: 'counter', help })
  }

  inc(name: string, by = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + by)
  }

  private hist(map: Map<string, HistSeries>, key: string, label: string, l?: Record<string, string>): Histogram {
    let e = map.get(key)
    if (!e) map.set(key, (e = { labels: l ?? { [label]: key }, h: new Histogram() }))
    return e.h
  }

  // Worker processes send snapshots to the primary, which adds them up for /metrics.
  snapshot(): MetricsSnapshot {
    const hists = (m: Map<string, HistSeries>) =>
      [...m].map(
        ([k, { labels: l, h }]) =>
          [k, { labels: l, counts: h.cumulative(), sum: h.sum, count: h.count }] as [
            string,
            Labelled<{ counts: number[]; sum: number; count: number }>,
          ],
      )
    return {
      requests: [...this.requests].map(([k, v]) => [k, { ...v }]),
      latency: hists(this.latency),
      upstreamLatency: hists(this.upstreamLatency),
      counters: [...this.counters],
      collected: [...this.families].flatMap(([name, f]) => (f.collect ? [{ name, type: f.type, help: f.help, samples: [...f.collect()] }] : [])),
      described: [...this.families].flatMap(([name, f]): [string, string][] => (f.collect || BUILT_IN_NAMES.has(name) ? [] : [[name, f.help]])),
    }
  }

  add(s: MetricsSnapshot): void {
    this.snapshotsAdded++
    for (const [k, v] of s.requests) {
      const c = this.requests.get(k)
      if (c) c.n += v.n
      else this.requests.set(k, { labels: v.labels, n: v.n })
    }
    for (const [k, v] of s.latency) this.hist(this.latency, k, 'route', v.labels).addCumulative(v.counts, v.sum, v.count)
    for (const [k, v] of s.upstreamLatency) this.hist(this.upstreamLatency, k, 'upstream', v.labels).addCumulative(v.counts, v.sum, v.count)
    for (const [k, n] of s.counters) this.inc(k, n)
    for (const [name, help] of s.described ?? []) this.describe(name, help)
    for (const { name, type, help, samples } of s.collected ?? []) {
      if (!this.families.has(name)) this.families.set(name, { type, help })
      let byLabels = this.added.get(name)
      if (!byLabels) this.added.set(name, (byLabels = new Map()))
      for (const { labels: l, value } of samples) {
        const key = labels(l)
        const have = byLabels.get(key)
        if (have) have.value += value
        else byLabels.set(key, { labels: l, value })
      }
    }
  }

  // A collected family's samples (its collector's and those added from snapshots), summed by labels.
  samples(name: string): Sample[] {
    const out = new Map<string, Sample>()
    const put = (l: Record<string, string>, value: number) => {
      const key = labels(l)
      const have = out.get(key)
      if (have) have.value += value
      else out.set(key, { labels: l, value })
    }
    for (const { labels: l, value } of this.families.get(name)?.collect?.() ?? []) put(l, value)
    for (const { labels: l, value } of this.added.get(name)?.values() ?? []) put(l, value)
    return [...out.values()]
  }

  // Label sets of counter keys, parsed once each (a bounded number, like `labelled`).
  private readonly parsedKeys = new Map<string, Record<string, string>>()
  private labelsOf(key: string): Record<string, string> {
    let l = this.parsedKeys.get(key)
    if (l === undefined) {
      l = labelsOfKey(key)
      if (this.parsedKeys.size < 65_536) this.parsedKeys.set(key, l)
    }
    return l
  }

  // What the traffic history needs, summed over routes: read once a second, no per-request cost.
  traffic(): TrafficTotals {
    const t: TrafficTotals = {
      requests: 0,
      errors: new Map(),
      statuses: new Map(),
      latency: new Array<number>(BUCKETS.length + 1).fill(0),
      throttled: new Map(),
      auth: new Map(),
    }
    const add = (m: Map<string, number>, k: string, n: number) => m.set(k, (m.get(k) ?? 0) + n)
    for (const { labels: l, n } of this.requests.values()) {
      t.requests += n
      if (l.code) add(t.errors, l.code, n)
      add(t.statuses, `${l.status!.charAt(0)}xx`, n)
    }
    for (const { h } of this.latency.values()) for (let i = 0; i < h.counts.length; i++) t.latency[i]! += h.counts[i]!
    for (const [key, n] of this.counters) {
      if (key.startsWith(THROTTLED_PREFIX)) {
        const l = this.labelsOf(key)
        if (l.result === 'refused') add(t.throttled, `${l.app ?? ''}\0${l.route ?? ''}`, n)
      } else if (key.startsWith(AUTH_BY_APP_PREFIX)) {
        const l = this.labelsOf(key)
        add(t.auth, `${l.app ?? ''}\0${l.route ?? ''}\0${l.code ?? ''}`, n)
      }
    }
    return t
  }

  render(): string {
    const out: string[] = []
    out.push('# HELP gateway_requests_total Requests answered, by route, status and gateway error code.', '# TYPE gateway_requests_total counter')
    for (const { labels: l, n } of this.requests.values()) out.push(`gateway_requests_total${labels(l)} ${n}`)
    this.renderHist(out, 'gateway_request_duration_seconds', 'Time from request to response headers.', this.latency)
    this.renderHist(out, 'gateway_upstream_duration_seconds', 'Time an upstream took to answer with headers.', this.upstreamLatency)
    for (const [name, f] of this.families) {
      out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`)
      if (f.collect || this.added.has(name)) {
        const samples = new Map<string, number>()
        for (const { labels: l, value } of f.collect?.() ?? []) samples.set(labels(l), (samples.get(labels(l)) ?? 0) + value)
        for (const [key, { value }] of this.added.get(name) ?? []) samples.set(key, (samples.get(key) ?? 0) + value)
        for (const [key, value] of samples) out.push(`${name}${key} ${value}`)
        continue
      }
      const series = [...this.counters].filter(([k]) => k === name || k.startsWith(`${name}{`))
      if (series.length === 0) out.push(`${name} 0`)
      for (const [k, n] of series) out.push(`${k} ${n}`)
    }
    return `${out.join('\n')}\n`
  }

  private renderHist(out: string[], name: string, help: string, map: Map<string, HistSeries>): void {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`)
    for (const { labels: l, h } of map.values()) {
      const counts = h.cumulative()
      BUCKETS.forEach((b, i) => out.push(`${name}_bucket${labels({ ...l, le: String(b) })} ${counts[i]}`))
      out.push(`${name}_bucket${labels({ ...l, le: '+Inf' })} ${h.count}`, `${name}_sum${labels(l)} ${h.sum}`, `${name}_count${labels(l)} ${h.count}`)
    }
  }
}
