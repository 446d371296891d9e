// The sampling decision for a request, made before its span exists. Most requests are not
// sampled at a low ratio, and for them the SDK's startSpan (a non-recording span, contexts,
// attribute cleaning, its own metrics) was most of tracing's cost: they get the configured
// sampler's decision and the SDK's ids, and no span. A sampled request's span is then started
// with the same trace id and decision: the provider's sampler and id generator are this object,
// which hands them over once and otherwise defers to the configured sampler and ids.
import { SpanKind, type Attributes, type Context, type Link } from '@opentelemetry/api'
import { RandomIdGenerator, SamplingDecision, type IdGenerator, type Sampler, type SamplingResult } from '@opentelemetry/sdk-trace'

const NO_ATTRIBUTES: Attributes = Object.freeze({})
const NO_LINKS: Link[] = []

export class Decider implements Sampler, IdGenerator {
  private readonly ids = new RandomIdGenerator()
  private presetTraceId: string | null = null
  private presetResult: SamplingResult | null = null

  constructor(private readonly sampler: Sampler) {}

  // The decision for a request span under `parent`: its trace id (the parent's, or new), and
  // whether it is recorded.
  decide(parent: Context, parentTraceId: string | undefined, name: string): { traceId: string; result: SamplingResult } {
    const traceId = parentTraceId ?? this.ids.generateTraceId()
    return { traceId, result: this.sampler.shouldSample(parent, traceId, name, SpanKind.SERVER, NO_ATTRIBUTES, NO_LINKS) }
  }

  recorded(result: SamplingResult): boolean {
    return result.decision !== SamplingDecision.NOT_RECORD
  }

  // Runs `start` (a startSpan call) with this trace id (for a root span) and decision.
  startWith<T>(traceId: string | null, result: SamplingResult, start: () => T): T {
    this.presetTraceId = traceId
    this.presetResult = result
    try {
      return start()
    } finally {
      this.presetTraceId = null
      this.presetResult = null
    }
  }

  spanId(): string {
    return this.ids.generateSpanId()
  }

  shouldSample(...args: Parameters<Sampler['shouldSample']>): SamplingResult {
    const preset = this.presetResult
    if (preset === null) return this.sampler.shouldSample(...args)
    this.presetResult = null
    return preset
  }

  generateTraceId(): string {
    const preset = this.presetTraceId
    if (preset === null) return this.ids.generateTraceId()
    this.presetTraceId = null
    return preset
  }

  generateSpanId(): string {
    return this.ids.generateSpanId()
  }

  toString(): string {
    return this.sampler.toString()
  }
}
