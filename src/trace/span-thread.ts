// The span thread (a Worker of the process that traces): the OpenTelemetry SDK's tracer, batch
// span processor and OTLP exporter live here, not on the thread that serves requests. The
// request thread sends recorded spans as data (span-data.ts), in batches, as JSON; this thread
// makes them with the SDK and exports them, and reports back what became of them (counts for
// /metrics) and what went wrong (warnings). Its code runs in batches, where it stays hot, and
// its objects live in its own heap.
import { defaultResource, detectResources, envDetector, hostDetector, resourceFromAttributes } from '@opentelemetry/resources'
import { AlwaysOffSampler, TracerProvider } from '@opentelemetry/sdk-trace'
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions'
import { version } from '../../package.json'
import { spanProcessor, type SpanResult } from './export.ts'
import type { TracingSettings } from './options.ts'
import { makeSpans, Preset, type SpanData } from './span-data.ts'

export type ToSpanThread = { t: 'init'; settings: TracingSettings } | { t: 'spans'; json: string } | { t: 'shutdown' }
export type FromSpanThread = { t: 'took' } | { t: 'count'; result: SpanResult; n: number } | { t: 'warn'; message: string } | { t: 'done' }

declare const self: Worker
const post = (m: FromSpanThread) => self.postMessage(m)
const message = (err: unknown) => (err instanceof Error ? err.message : String(err))

let made: ((spans: SpanData[]) => void) | null = null
let provider: TracerProvider | null = null

function start(s: TracingSettings): void {
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'portcullis', [ATTR_SERVICE_VERSION]: version }))
    .merge(detectResources({ detectors: [hostDetector, envDetector] }))
  // Every span here is started with the decision it was given; nothing else is recorded.
  const preset = new Preset(new AlwaysOffSampler())
  provider = new TracerProvider({
    resource,
    sampler: preset,
    idGenerator: preset,
    spanProcessors: [spanProcessor(s, (result, n) => post({ t: 'count', result, n }))],
  })
  const tracer = provider.getTracer('portcullis', version)
  made = (spans) => makeSpans(tracer, preset, spans, (err) => post({ t: 'warn', message: `tracing: a span could not be made (${message(err)})` }))
}

self.onmessage = async (e: MessageEvent<ToSpanThread>) => {
  const m = e.data
  try {
    if (m.t === 'init') start(m.settings)
    else if (m.t === 'spans') {
      try {
        made?.(JSON.parse(m.json) as SpanData[])
      } finally {
        post({ t: 'took' })
      }
    } else if (m.t === 'shutdown') {
      // The batch processor exports what it holds, within the exporter's timeout; the request
      // thread waits for `done` no longer than its own deadline.
      await provider?.shutdown().catch((err: unknown) => post({ t: 'warn', message: `tracing: the last export failed (${message(err)})` }))
      post({ t: 'done' })
    }
  } catch (err) {
    post({ t: 'warn', message: `tracing: the span thread failed (${message(err)})` })
    if (m.t === 'shutdown') post({ t: 'done' })
  }
}
