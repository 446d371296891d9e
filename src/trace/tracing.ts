// Tracing on: a tracer provider of the gateway's own (nothing is registered globally), the
// sampler the settings name, and an observer that gives each request its span. Loaded only
// when tracing is on (main.ts imports it on demand).
import { defaultResource, detectResources, envDetector, hostDetector, resourceFromAttributes } from '@opentelemetry/resources'
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
} from '@opentelemetry/sdk-trace'
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions'
import { version } from '../../package.json'
import { warn } from '../log/events.ts'
import type { Metrics } from '../metrics/metrics.ts'
import type { RequestObserver } from '../runtime/handle.ts'
import { Decider } from './decide.ts'
import { spanProcessor, type SpanResult } from './export.ts'
import { describeTracing, type SamplerName, type TracingSettings } from './options.ts'
import { Burst, earlySpan, requestSpan } from './spans.ts'

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
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'portcullis', [ATTR_SERVICE_VERSION]: version }))
    .merge(detectResources({ detectors: [hostDetector, envDetector] }))
  const decider = new Decider(SAMPLERS[s.sampler](s.ratio), s.sampler.endsWith('traceidratio') ? s.ratio : null)
  const provider = new TracerProvider({ resource, sampler: decider, idGenerator: decider, spanProcessors: [spanProcessor(s, count)] })
  const tracer = provider.getTracer('portcullis', version)
  const burst = new Burst(tracer, decider)
  const tracers = { decider, burst }
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
          if (!('route' in facts)) earlySpan(tracer, facts, res.status)
          return inner.done(facts, res)
        },
      }
    },
    async shutdown(ms) {
      // The spans of requests that ended, made now so the export takes them.
      burst.flush()
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([provider.shutdown().catch(() => {}), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))])
      clearTimeout(timer)
    },
  }
}
