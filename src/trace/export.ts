// Spans leave through the SDK's batch span processor (a bounded queue, exported from a timer)
// and the OTLP/HTTP exporter: a slow or absent collector costs requests nothing, spans that do
// not fit the queue are dropped. What became of them is counted from the processor's own
// self-observability counter.
import { createNoopMeter, type Attributes, type Counter, type Meter, type MeterProvider } from '@opentelemetry/api'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base'
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http'
import { JsonTraceSerializer, TraceExporterMetricsHelper } from '@opentelemetry/otlp-transformer'
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace'
import type { TracingSettings } from './options.ts'

export type SpanResult = 'exported' | 'dropped' | 'failed'

// The processor's `otel.sdk.processor.span.processed` counter: no error.type = exported,
// `queue_full` = dropped, any other = the export failed.
const PROCESSED = 'otel.sdk.processor.span.processed'

function countingMeterProvider(count: (result: SpanResult, n: number) => void): MeterProvider {
  const noop = createNoopMeter()
  const processed: Counter = {
    add(n: number, attributes?: Attributes) {
      const error = attributes?.['error.type']
      count(error === undefined ? 'exported' : error === 'queue_full' ? 'dropped' : 'failed', n)
    },
  }
  const meter: Meter = Object.create(noop)
  meter.createCounter = ((name: string, options?: object) =>
    name === PROCESSED ? processed : noop.createCounter(name, options)) as Meter['createCounter']
  return { getMeter: () => meter }
}

// http/protobuf is the exporter package's; http/json is built the way
// @opentelemetry/exporter-trace-otlp-http builds it, from the same parts (that package pins
// another SDK version). Headers, timeout and compression come from OTEL_EXPORTER_OTLP_*.
function exporterFor(s: TracingSettings): SpanExporter {
  if (s.protocol === 'http/protobuf') return new OTLPTraceExporter({ url: s.url })
  const options = convertLegacyHttpOptions({ url: s.url }, 'TRACES', 'v1/traces', { 'Content-Type': 'application/json' })
  return new OTLPExporterBase<ReadableSpan[]>(
    createOtlpHttpExportDelegate(options, JsonTraceSerializer, 'otlp_http_span_exporter', TraceExporterMetricsHelper, undefined),
  )
}

export function spanProcessor(s: TracingSettings, count: (result: SpanResult, n: number) => void): BatchSpanProcessor {
  return new BatchSpanProcessor({
    exporter: exporterFor(s),
    maxQueueSize: s.maxQueueSize,
    maxExportBatchSize: s.maxExportBatchSize,
    scheduledDelayMillis: s.scheduledDelayMs,
    exportTimeoutMillis: s.exportTimeoutMs,
    selfObsMeterProvider: countingMeterProvider(count),
  })
}
