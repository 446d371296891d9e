// The admin API's traffic history (GET /traffic, GET /traffic/stream): one point a second for
// the last 15 minutes, each the difference of the Metrics registry's totals since the second
// before. Nothing is recorded per request beyond the counters and histograms /metrics has;
// p50 and p99 are estimated from the duration histogram's bucket counts of that second (linear
// within a bucket, as Prometheus's histogram_quantile does).
import { BUCKETS, type TrafficTotals } from '../metrics/metrics.ts'

export const HISTORY_SECONDS = 15 * 60

export interface TrafficPoint {
  t: number // ms since the epoch when the second ended
  requests: number // answered in that second
  errors: Record<string, number> // by gateway error code
  statuses: Record<string, number> // by class: 2xx, 3xx, 4xx, 5xx
  p50_ms: number | null // null: no request ended in that second
  p99_ms: number | null
  throttled: { app: string; route: string; n: number }[] // app '' when none was identified
  auth_failures: { app: string; route: string; code: string; n: number }[]
}

// The q-quantile of durations counted per bucket (seconds), in ms; null when there are none.
export function quantileMs(q: number, counts: readonly number[]): number | null {
  let total = 0
  for (const c of counts) total += c
  if (total === 0) return null
  const rank = q * total
  let below = 0
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!
    if (c > 0 && below + c >= rank) {
      // Above the last bound there is no upper edge: the last bound is the estimate.
      if (i === BUCKETS.length) return BUCKETS[BUCKETS.length - 1]! * 1000
      const lower = i === 0 ? 0 : BUCKETS[i - 1]!
      const upper = BUCKETS[i]!
      return Math.round((lower + (upper - lower) * ((rank - below) / c)) * 1000 * 100) / 100
    }
    below += c
  }
  return BUCKETS[BUCKETS.length - 1]! * 1000
}

// The increase of each key; a total that went down (a --workers worker restarted and its counts
// left the sum) counts as none.
function deltas(now: Map<string, number>, before: Map<string, number> | undefined): [string, number][] {
  const out: [string, number][] = []
  for (const [k, n] of now) {
    const d = n - (before?.get(k) ?? 0)
    if (d > 0) out.push([k, d])
  }
  return out
}

export function pointOf(t: number, now: TrafficTotals, before: TrafficTotals | null): TrafficPoint {
  const latency = now.latency.map((n, i) => Math.max(0, n - (before?.latency[i] ?? 0)))
  return {
    t,
    requests: Math.max(0, now.requests - (before?.requests ?? 0)),
    errors: Object.fromEntries(deltas(now.errors, before?.errors)),
    statuses: Object.fromEntries(deltas(now.statuses, before?.statuses)),
    p50_ms: quantileMs(0.5, latency),
    p99_ms: quantileMs(0.99, latency),
    throttled: deltas(now.throttled, before?.throttled).map(([k, n]) => {
      const [app, route] = k.split('\0') as [string, string]
      return { app, route, n }
    }),
    auth_failures: deltas(now.auth, before?.auth).map(([k, n]) => {
      const [app, route, code] = k.split('\0') as [string, string, string]
      return { app, route, code, n }
    }),
  }
}

export class TrafficHistory {
  private readonly ring: (TrafficPoint | undefined)[] = new Array(HISTORY_SECONDS)
  private next = 0 // where the next point goes
  private count = 0
  private last: TrafficTotals
  private readonly listeners = new Set<(p: TrafficPoint) => void>()
  private readonly timer: ReturnType<typeof setInterval>

  constructor(
    private readonly read: () => TrafficTotals,
    private readonly clock: () => number = Date.now,
  ) {
    this.last = read()
    this.timer = setInterval(() => this.sample(), 1000)
    this.timer.unref()
  }

  // Takes the point of the second just ended (the timer calls it).
  sample(): TrafficPoint {
    const now = this.read()
    const point = pointOf(this.clock(), now, this.last)
    this.last = now
    this.ring[this.next] = point
    this.next = (this.next + 1) % HISTORY_SECONDS
    this.count = Math.min(this.count + 1, HISTORY_SECONDS)
    for (const l of this.listeners) l(point)
    return point
  }

  // The last `seconds` points, oldest first.
  recent(seconds: number): TrafficPoint[] {
    const n = Math.min(seconds, this.count)
    const out = new Array<TrafficPoint>(n)
    for (let i = 0; i < n; i++) out[i] = this.ring[(this.next - n + i + HISTORY_SECONDS) % HISTORY_SECONDS]!
    return out
  }

  // Calls `listener` with each new point until the returned function is called.
  subscribe(listener: (p: TrafficPoint) => void): () => void {
    this.listeners.add(listener)
    return () => void this.listeners.delete(listener)
  }

  get subscribers(): number {
    return this.listeners.size
  }

  stop(): void {
    clearInterval(this.timer)
    this.listeners.clear()
  }
}

const encoder = new TextEncoder()

// GET /traffic/stream: `event: history` (the last `history` points as one JSON array), then an
// `event: point` each second, until the client leaves.
export function trafficStream(traffic: TrafficHistory, signal: AbortSignal, history = 60): Response {
  let unsubscribe: (() => void) | null = null
  const end = () => {
    unsubscribe?.()
    unsubscribe = null
  }
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(`event: history\ndata: ${JSON.stringify(traffic.recent(history))}\n\n`))
      if (signal.aborted) return
      unsubscribe = traffic.subscribe((p) => {
        try {
          controller.enqueue(encoder.encode(`event: point\ndata: ${JSON.stringify(p)}\n\n`))
        } catch {
          end() // the stream was closed under us
        }
      })
      signal.addEventListener('abort', () => {
        end()
        try {
          controller.close()
        } catch {}
      })
    },
    cancel: end,
  })
  return new Response(body, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-store' } })
}
