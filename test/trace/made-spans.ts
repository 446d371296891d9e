// Recorded spans made as the span thread makes them (span-data.ts), in the test's own thread:
// what the request path hands over goes through JSON (as to the span thread), and `flush`
// makes the spans with the SDK into an in-memory exporter.
import { AlwaysOffSampler, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import { makeSpans, Preset, type SpanData } from '../../src/trace/span-data.ts'
import type { SpanSink } from '../../src/trace/spans.ts'

export function madeSpans(): { exporter: InMemorySpanExporter; spans: SpanSink; flush(): void } {
  const exporter = new InMemorySpanExporter()
  const preset = new Preset(new AlwaysOffSampler())
  const provider = new TracerProvider({ sampler: preset, idGenerator: preset, spanProcessors: [new SimpleSpanProcessor({ exporter })] })
  const tracer = provider.getTracer('test')
  const pending: SpanData[] = []
  return {
    exporter,
    spans: { add: (d) => void pending.push(JSON.parse(JSON.stringify(d)) as SpanData) },
    flush: () =>
      makeSpans(tracer, preset, pending.splice(0), (err) => {
        throw err
      }),
  }
}
