// The sampling decision for a request, made before its span exists. Most requests are not
// sampled at a low ratio, and for them the SDK's startSpan (a non-recording span, contexts,
// attribute cleaning, its own metrics) was most of tracing's cost: they get the configured
// sampler's decision and the SDK's ids, and no span. A sampled request's span is then started
// with the same trace id and decision: the provider's sampler and id generator are this object,
// which hands them over once and otherwise defers to the configured sampler and ids.
import { SpanKind, type Attributes, type Context, type Link } from '@opentelemetry/api'
import { SamplingDecision, type IdGenerator, type Sampler, type SamplingResult } from '@opentelemetry/sdk-trace'

const NO_ATTRIBUTES: Attributes = Object.freeze({})

// Random ids cut from a long random hex string, refilled from the system's CSPRNG: every request
// takes a trace id and a span id, and a Buffer formatted per id (the SDK's RandomIdGenerator)
// cost about a microsecond a request. Ids are lowercase hex and never all zeros (W3C).
const POOL_BYTES = 16 * 1024
const ZEROS = '0'.repeat(32)
export class IdPool {
  private hex = ''
  private at = 0

  take(chars: 32 | 16): string {
    for (;;) {
      if (this.at + chars > this.hex.length) {
        this.hex = Buffer.from(crypto.getRandomValues(new Uint8Array(POOL_BYTES))).toString('hex')
        this.at = 0
      }
      const id = this.hex.slice(this.at, this.at + chars)
      this.at += chars
      if (id !== ZEROS.slice(0, chars)) return id
    }
  }
}
const NO_LINKS: Link[] = []

export class Decider implements Sampler, IdGenerator {
  private readonly ids = new IdPool()
  private presetTraceId: string | null = null
  private presetResult: SamplingResult | null = null

  constructor(private readonly sampler: Sampler) {}

  // The decision for a request span under `parent`: its trace id (the parent's, or new), and
  // whether it is recorded.
  decide(parent: Context, parentTraceId: string | undefined, name: string): { traceId: string; result: SamplingResult } {
    const traceId = parentTraceId ?? this.ids.take(32)
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
    return this.ids.take(16)
  }

  shouldSample(...args: Parameters<Sampler['shouldSample']>): SamplingResult {
    const preset = this.presetResult
    if (preset === null) return this.sampler.shouldSample(...args)
    this.presetResult = null
    return preset
  }

  generateTraceId(): string {
    const preset = this.presetTraceId
    if (preset === null) return this.ids.take(32)
    this.presetTraceId = null
    return preset
  }

  generateSpanId(): string {
    return this.ids.take(16)
  }

  toString(): string {
    return this.sampler.toString()
  }
}
