// A recorded span as plain data: what the request path keeps of it (ids chosen up front,
// times, attributes, status), and how the SDK makes it later, elsewhere. The request thread
// hands these to the span thread (span-thread.ts) in batches, as JSON; there the SDK's tracer
// makes each one with its own ids and decision (Preset), ends it at its own end time, and the
// batch span processor exports it. Made one at a time on the request thread, a hundred
// requests apart at 1%, the SDK's calls ran cold and took ten to twenty times as long, and its
// objects grew the request thread's heap.
import { createTraceState, ROOT_CONTEXT, SpanStatusCode, trace, type Attributes, type Context, type SpanKind, type Tracer } from '@opentelemetry/api'
import { SamplingDecision, type IdGenerator, type Sampler, type SamplingResult } from '@opentelemetry/sdk-trace'

export interface SpanData {
  name: string
  kind: SpanKind
  traceId: string
  spanId: string
  // The parent: the caller's span (remote) for a request span, the request span for a try;
  // null for a new trace.
  parentSpanId: string | null
  parentFlags: number
  parentRemote: boolean
  traceState: string | null // the trace's, serialized
  sampled: boolean // recorded and sampled (exported), else recorded only
  start: number // epoch ms
  end: number
  attributes: Attributes
  error: boolean
  message: string | null // with error: the status message
}

const SAMPLED: SamplingResult = Object.freeze({ decision: SamplingDecision.RECORD_AND_SAMPLED })
const RECORD_ONLY: SamplingResult = Object.freeze({ decision: SamplingDecision.RECORD })

// The provider's sampler and id generator: each span is started with the decision and ids it
// was given; anything else the SDK starts gets the fallback's.
export class Preset implements Sampler, IdGenerator {
  private traceId: string | null = null
  private spanId: string | null = null
  private result: SamplingResult | null = null

  constructor(
    private readonly fallback: Sampler,
    private readonly ids: () => { traceId: string; spanId: string } = randomIds,
  ) {}

  startWith<T>(traceId: string, spanId: string, result: SamplingResult, start: () => T): T {
    this.traceId = traceId
    this.spanId = spanId
    this.result = result
    try {
      return start()
    } finally {
      this.traceId = this.spanId = this.result = null
    }
  }

  shouldSample(...args: Parameters<Sampler['shouldSample']>): SamplingResult {
    const preset = this.result
    if (preset === null) return this.fallback.shouldSample(...args)
    this.result = null
    return preset
  }

  generateTraceId(): string {
    const preset = this.traceId
    this.traceId = null
    return preset ?? this.ids().traceId
  }

  generateSpanId(): string {
    const preset = this.spanId
    this.spanId = null
    return preset ?? this.ids().spanId
  }

  toString(): string {
    return this.fallback.toString()
  }
}

function randomIds(): { traceId: string; spanId: string } {
  const hex = Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('hex')
  return { traceId: hex.slice(0, 32), spanId: hex.slice(32) }
}

function parentContext(d: SpanData): Context {
  if (d.parentSpanId === null) return ROOT_CONTEXT
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: d.traceId,
    spanId: d.parentSpanId,
    traceFlags: d.parentFlags,
    isRemote: d.parentRemote,
    ...(d.traceState === null ? {} : { traceState: createTraceState(d.traceState) }),
  })
}

// Makes each span of `spans` with the SDK: started with its ids, decision and start time under
// its parent, given its status, ended at its end time (which hands it to the processors). A
// span that cannot be made is lost and told to `lost`, never thrown.
export function makeSpans(tracer: Tracer, preset: Preset, spans: readonly SpanData[], lost: (err: unknown) => void): void {
  for (const d of spans) {
    try {
      // A new trace's state comes with its decision; a child's with its parent.
      const result =
        d.parentSpanId === null && d.traceState !== null
          ? { decision: d.sampled ? SamplingDecision.RECORD_AND_SAMPLED : SamplingDecision.RECORD, traceState: createTraceState(d.traceState) }
          : d.sampled
            ? SAMPLED
            : RECORD_ONLY
      const span = preset.startWith(d.traceId, d.spanId, result, () =>
        tracer.startSpan(d.name, { kind: d.kind, startTime: d.start, attributes: d.attributes }, parentContext(d)),
      )
      if (d.error) span.setStatus(d.message === null ? { code: SpanStatusCode.ERROR } : { code: SpanStatusCode.ERROR, message: d.message })
      span.end(d.end)
    } catch (err) {
      lost(err)
    }
  }
}
