// The sampling decision for a request, made before its span exists. Most requests are not
// sampled at a low ratio, and for them the SDK's startSpan (a non-recording span, contexts,
// attribute cleaning, its own metrics) was most of tracing's cost: they get the configured
// sampler's decision and ids from a pool, and no span. A recorded request's spans are made
// later, on the span thread, with the same ids and decision (span-data.ts).
import { SpanKind, type Attributes, type Context, type Link } from '@opentelemetry/api'
import { ParentBasedSampler, SamplingDecision, type Sampler, type SamplingResult } from '@opentelemetry/sdk-trace'
import { ratioBound } from '../runtime/route-tracing.ts'

const NO_ATTRIBUTES: Attributes = Object.freeze({})

// Random ids cut from a long random hex string, refilled from the system's CSPRNG: every request
// takes a trace id and a span id, and a Buffer formatted per id (the SDK's RandomIdGenerator)
// cost about a microsecond a request. Ids are lowercase hex and never all zeros (W3C).
const POOL_BYTES = 16 * 1024
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1
export class IdPool {
  private hex = ''
  private words = new Uint32Array(0)
  private at = 0 // in hex characters: 8 to a 32-bit word
  // Of the last trace id taken: the XOR of its four 32-bit words read big-endian (see idWords),
  // from the random bytes themselves rather than parsed back from its hex.
  lastWords = 0

  take(chars: 32 | 16): string {
    for (;;) {
      if (this.at + chars > this.hex.length) {
        const bytes = crypto.getRandomValues(new Uint8Array(POOL_BYTES))
        this.hex = Buffer.from(bytes.buffer).toString('hex')
        this.words = new Uint32Array(bytes.buffer)
        this.at = 0
      }
      const first = this.at >>> 3
      this.at += chars
      let x = 0
      let any = 0
      for (let i = first; i < first + (chars >>> 3); i++) {
        const w = this.words[i]!
        x ^= w
        any |= w
      }
      if (any === 0) continue
      if (chars === 32) this.lastWords = (LITTLE_ENDIAN ? ((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24) : x) >>> 0
      return this.hex.slice(this.at - chars, this.at)
    }
  }
}
const NO_LINKS: Link[] = []

// A new trace's decision under the two ratio samplers (traceidratio, and parentbased_traceidratio
// without a caller's decision), made here rather than by calling them: the SDK's
// TraceIdRatioBasedSampler records a valid trace id when the XOR of its four 32-bit words (its
// hex read big-endian) is below floor(ratio × (2³² − 1)) (2³² at ratio 1). The same arithmetic
// on a pool id (valid by construction) skips the validity check and the sampler chain, the
// largest part of an unsampled request's tracing cost in a profile (about 0.4 µs of 2).
// test/trace/decide.test.ts holds it to the SDK sampler's answers.
const RECORDED: SamplingResult = Object.freeze({ decision: SamplingDecision.RECORD_AND_SAMPLED })
const NOT_RECORDED: SamplingResult = Object.freeze({ decision: SamplingDecision.NOT_RECORD })

export function idWords(traceId: string): number {
  let x = 0
  for (let i = 0; i < 32; i += 8) {
    let word = 0
    for (let j = i; j < i + 8; j++) {
      const c = traceId.charCodeAt(j)
      word = (word << 4) | (c < 58 ? c - 48 : c - 87)
    }
    x = (x ^ word) >>> 0
  }
  return x
}

export class Decider {
  private readonly rootBound: number | null
  // A caller's decision is the caller's (parentbased_*), or the ratio's too (the others).
  private readonly parentBased: boolean
  // What decide() answers (one object, filled anew by each call).
  private readonly answer: { traceId: string; result: SamplingResult } = { traceId: '', result: NOT_RECORDED }

  // `rootRatio`: the ratio when `sampler` is traceidratio or parentbased_traceidratio (their
  // new traces are then decided here), else null. `ids`: where ids come from (tests give theirs).
  constructor(
    private readonly sampler: Sampler,
    rootRatio: number | null = null,
    private readonly ids: Pick<IdPool, 'take'> & { readonly lastWords?: number } = new IdPool(),
  ) {
    this.rootBound = rootRatio === null ? null : ratioBound(rootRatio)
    this.parentBased = sampler instanceof ParentBasedSampler
  }

  // True when a request's decision is made here by a ratio, without the configured sampler (it
  // then needs no span name): a new trace under a ratio sampler or a route's `trace sample`,
  // and a caller's trace on such a route when the sampler is not parent-based.
  decidesByRatio(callerTraced: boolean, routeBound: number | null): boolean {
    return callerTraced ? routeBound !== null && !this.parentBased : routeBound !== null || this.rootBound !== null
  }

  // The decision for a request span under `parent`: its trace id (the parent's, or new), and
  // whether it is recorded. `routeBound`: the route's own ratio (`trace sample`, as ratioBound),
  // which replaces the sampler's: for new traces, and for a caller's unless the sampler is
  // parent-based (the caller's sampled flag then decides, as without it). `name` goes to the
  // configured sampler when it is asked. The answer is one object of this Decider's, filled
  // anew by each call: read it before the next.
  decide(
    parent: Context,
    parentTraceId: string | undefined,
    name: string,
    routeBound: number | null = null,
  ): { traceId: string; result: SamplingResult } {
    const out = this.answer
    if (parentTraceId === undefined) {
      const bound = routeBound ?? this.rootBound
      if (bound !== null) {
        out.traceId = this.ids.take(32)
        out.result = (this.ids.lastWords ?? idWords(out.traceId)) < bound ? RECORDED : NOT_RECORDED
        return out
      }
    } else if (routeBound !== null && !this.parentBased) {
      out.traceId = parentTraceId
      out.result = idWords(parentTraceId) < routeBound ? RECORDED : NOT_RECORDED
      return out
    }
    out.traceId = parentTraceId ?? this.ids.take(32)
    out.result = this.sampler.shouldSample(parent, out.traceId, name, SpanKind.SERVER, NO_ATTRIBUTES, NO_LINKS)
    return out
  }

  recorded(result: SamplingResult): boolean {
    return result.decision !== SamplingDecision.NOT_RECORD
  }

  spanId(): string {
    return this.ids.take(16)
  }
}
