// Tracing on: the sampler the settings name, an observer that gives each request its span
// (decided and recorded here, on the request thread), and the span thread (span-thread.ts), a
// Worker where the SDK's tracer provider (nothing registered globally), batch span processor
// and OTLP exporter make and export the recorded spans. Loaded only when tracing is on
// (main.ts imports it on demand).
import { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler, type Sampler } from '@opentelemetry/sdk-trace'
import { warn } from '../log/events.ts'
import type { Metrics } from '../metrics/metrics.ts'
import type { RequestObserver } from '../runtime/handle.ts'
import { Decider } from './decide.ts'
import type { SpanResult } from './export.ts'
import { describeTracing, type SamplerName, type TracingSettings } from './options.ts'
import type { FromSpanThread, ToSpanThread } from './span-thread.ts'
import { earlySpan, requestSpan, SpanPipe } from './spans.ts'

export interface Tracing {
  readonly description: string
  // The observer that starts and ends the spans, around the one that logs.
  observe(inner: RequestObserver): RequestObserver
  // Exports what is queued (within `ms`), then stops.
  shutdown(ms: number): Promise<void>
}

const SAMPLERS: Record<SamplerName, (ratio: number) => Sampler> = {
  always_on: () => new AlwaysOnSampler(),
  always_off: () => new AlwaysOffSampler(),
  traceidratio: (r) => new TraceIdRatioBasedSampler(r),
  parentbased_always_on: () => new ParentBasedSampler({ root: new AlwaysOnSampler() }),
  parentbased_always_off: () => new ParentBasedSampler({ root: new AlwaysOffSampler() }),
  parentbased_traceidratio: (r) => new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(r) }),
}

const NOTICE_EVERY_MS = 60_000

export function startTracing(s: TracingSettings, metrics: Metrics | null): Tracing {
  metrics?.describe(
    'gateway_trace_spans_total',
    'Spans of traced requests by result: exported, dropped (the export queue was full), failed (the collector did not take them).',
  )
  // Lost spans: counted in the metric, and told on stderr at most once a minute.
  const lost = { dropped: 0, failed: 0 }
  let noticed = -Infinity
  const count = (result: SpanResult, n: number) => {
    metrics?.incLabelled('gateway_trace_spans_total', { result }, n)
    if (result === 'exported') return
    lost[result] += n
    if (performance.now() - noticed < NOTICE_EVERY_MS) return
    noticed = performance.now()
    warn('tracing', `tracing: ${lost.dropped} spans dropped (the export queue was full), ${lost.failed} not taken by the collector at ${s.url}`, {
      dropped: lost.dropped,
      failed: lost.failed,
      url: s.url,
    })
    lost.dropped = lost.failed = 0
  }
  const thread = new Worker(new URL('./span-thread.ts', import.meta.url).href)
  const send = (m: ToSpanThread) => thread.postMessage(m)
  let done: (() => void) | null = null
  let broken = false
  // The span thread must not keep the process alive; shutdown() waits for it when it matters.
  thread.unref()
  send({ t: 'init', settings: s })
  const decider = new Decider(SAMPLERS[s.sampler](s.ratio), s.sampler.endsWith('traceidratio') ? s.ratio : null)
  // Batches of at most 512 spans (never more than the processor's queue holds, which would
  // drop the rest) and at most 1 s late (sooner when the processor's own delay is shorter);
  // no more in flight than that queue holds.
  const maxSpans = Math.min(512, s.maxQueueSize)
  const spans = new SpanPipe(
    (json) => {
      if (!broken) send({ t: 'spans', json })
    },
    { maxSpans, maxMs: Math.min(1000, s.scheduledDelayMs), maxInFlight: Math.max(2, Math.ceil(s.maxQueueSize / maxSpans)) },
    (n) => count('dropped', n),
  )
  thread.onmessage = (e: MessageEvent<FromSpanThread>) => {
    const m = e.data
    if (m.t === 'took') spans.taken()
    else if (m.t === 'count') count(m.result, m.n)
    else if (m.t === 'warn') warn('tracing', m.message)
    else if (m.t === 'done') done?.()
  }
  thread.onerror = (e: ErrorEvent) => {
    // The span thread is gone: spans are no longer made; requests are not affected.
    if (!broken) warn('tracing', `tracing: the span thread stopped (${e.message}); no more spans are exported`)
    broken = true
    done?.()
  }
  const tracers = { decider, spans }
  return {
    description: describeTracing(s),
    observe(inner) {
      return {
        begin(ctx) {
          // A route's `trace off`: as with tracing off, a transparent hop.
          const own = ctx.route.tracing
          ctx.trace = own === null ? requestSpan(tracers, ctx, null) : own.off ? null : requestSpan(tracers, ctx, own.bound)
          inner.begin?.(ctx)
        },
        done(facts, res) {
          if (!('route' in facts)) earlySpan(tracers, facts, res.status)
          return inner.done(facts, res)
        },
      }
    },
    async shutdown(ms) {
      // The spans of requests that ended go to the span thread, which exports what it holds.
      spans.flush()
      let timer: ReturnType<typeof setTimeout> | undefined
      const finished = new Promise<void>((resolve) => (done = resolve))
      if (!broken) send({ t: 'shutdown' })
      else done?.()
      await Promise.race([finished, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))])
      clearTimeout(timer)
      thread.terminate()
    },
  }
}
