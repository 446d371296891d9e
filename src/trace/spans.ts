// A request's span (SERVER) and one span per try at an upstream (CLIENT), with the W3C trace
// context each try sends. Attributes follow the OpenTelemetry HTTP semantic conventions, plus
// portcullis.* for what only the gateway knows. A request the sampler did not pick has no
// span at all (decide.ts): only ids, and its tries send the request's traceparent. A recorded
// request keeps its spans as data (span-data.ts: ids chosen up front, times, attributes) and
// hands each to a SpanSink as it ends: in the gateway a SpanPipe, which sends them in batches
// to the span thread, where the SDK makes and exports them.
import {
  ROOT_CONTEXT,
  SpanKind,
  trace,
  type Attributes,
  type Context,
  type SpanContext,
  type TextMapGetter,
  type TraceState,
} from '@opentelemetry/api'
import { SamplingDecision, type SamplingResult } from '@opentelemetry/sdk-trace'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_RESEND_COUNT,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions'
import type { AccessLogEntry, RequestContext, RequestTrace, UpstreamTrace } from '../runtime/context.ts'
import type { EarlyFacts } from '../runtime/handle.ts'
import type { Decider } from './decide.ts'
import type { SpanData } from './span-data.ts'

// Where recorded spans go when they end.
export interface SpanSink {
  add(span: SpanData): void
}

export interface Tracers {
  decider: Decider
  spans: SpanSink
}

const propagator = new W3CTraceContextPropagator()
const fromHeaders: TextMapGetter<Headers> = {
  get: (h, key) => h.get(key) ?? undefined,
  keys: (h) => [...h.keys()],
}

// Span times on the clock the gateway measures requests with (performance.now()).
const origin = performance.timeOrigin
const now = () => origin + performance.now()

// The client's trace context. None, or a malformed traceparent: the request starts a new trace.
// (Most clients send none: then nothing is parsed.)
function parentOf(headers: Headers | undefined): Context {
  return headers === undefined || !headers.has('traceparent') ? ROOT_CONTEXT : propagator.extract(ROOT_CONTEXT, headers, fromHeaders)
}

// traceparent (and tracestate) naming a span of this gateway, as header lines. Its ids come
// from the SDK, valid by construction: written as W3CTraceContextPropagator.inject writes
// them, without its checks and context (about 1 µs, twice what starting the span costs).
function headerLines(sc: SpanContext): string {
  const lines = `traceparent: 00-${sc.traceId}-${sc.spanId}-0${sc.traceFlags & 1}\r\n`
  return sc.traceState === undefined ? lines : `${lines}tracestate: ${sc.traceState.serialize()}\r\n`
}

export interface PipeLimits {
  maxSpans: number // a batch is sent when it holds this many
  maxMs: number // or this long after its first span
  // Batches sent and not yet taken (made into spans) by the other side: past this many, a
  // batch is dropped and counted, so a span thread that falls behind never holds more than
  // about this many batches in memory (the processor's own queue then drops as it did).
  maxInFlight: number
}

// The gateway's SpanSink: ended spans are sent on together, as one JSON text, once
// `maxSpans` have ended or `maxMs` after the first (the export sees them that much later).
// Each batch wakes the span thread, which shares the core in a pinned setup: ten wake-ups a
// second measured about a point of CPU more than one, at 1% sampling (bench/side-by-side.ts).
export class SpanPipe implements SpanSink {
  private pending: SpanData[] = []
  private timer: ReturnType<typeof setTimeout> | null = null
  private inFlight = 0

  constructor(
    private readonly send: (json: string) => void,
    private readonly limits: PipeLimits,
    private readonly dropped: (spans: number) => void,
  ) {}

  // The other side has made a batch into spans.
  taken(): void {
    if (this.inFlight > 0) this.inFlight--
  }

  add(span: SpanData): void {
    this.pending.push(span)
    if (this.pending.length >= this.limits.maxSpans) this.flush()
    else this.timer ??= setTimeout(() => this.flush(), this.limits.maxMs)
  }

  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    if (this.pending.length === 0) return
    const spans = this.pending
    this.pending = []
    if (this.inFlight >= this.limits.maxInFlight) return this.dropped(spans.length)
    this.inFlight++
    this.send(JSON.stringify(spans))
  }
}

class RecordedTry implements UpstreamTrace {
  readonly headerLines: string
  private status: number | null = null
  private bodyDone = false
  private failure: string | null = null
  private ended = false

  constructor(
    private readonly spans: SpanSink,
    private readonly d: SpanData,
    sc: SpanContext,
  ) {
    this.headerLines = headerLines(sc)
  }

  answered(status: number): void {
    this.status = status
    this.d.attributes[ATTR_HTTP_RESPONSE_STATUS_CODE] = status
    if (this.bodyDone) this.finish()
  }

  // May come before answered() when the whole answer arrived at once.
  bodyEnded(failure: string | null): void {
    this.bodyDone = true
    this.failure = failure
    if (this.status !== null) this.finish()
  }

  failed(kind: string, message: string): void {
    if (this.status === null) {
      this.d.attributes[ATTR_ERROR_TYPE] = kind
      this.d.error = true
      this.d.message = message
    }
    this.finish()
  }

  private finish(): void {
    if (this.ended) return
    this.ended = true
    // `cancelled`: the gateway stopped reading (the client left, or a retry on this status).
    if (this.failure !== null && this.failure !== 'cancelled') {
      this.d.attributes[ATTR_ERROR_TYPE] = this.failure
      this.d.error = true
      this.d.message = `the answer's body was cut (${this.failure})`
    } else if (this.status !== null && this.status >= 400) {
      this.d.attributes[ATTR_ERROR_TYPE] = String(this.status)
      this.d.error = true
    }
    this.d.end = now()
    this.spans.add(this.d)
  }
}

// A request the sampler did not pick: the trace continues upstream, nothing is recorded. Its
// tries send the request's traceparent (no span of their own): it is its own UpstreamTrace.
class UnsampledRequest implements RequestTrace, UpstreamTrace {
  // A field, as a try's is: the proxy reads it on every request.
  readonly headerLines: string

  constructor(
    private readonly traceId: string,
    spanId: string,
    traceState: TraceState | undefined,
  ) {
    this.headerLines =
      traceState === undefined ? `traceparent: 00-${traceId}-${spanId}-00\r\n` : headerLines({ traceId, spanId, traceFlags: 0, traceState })
  }

  attempt(): UpstreamTrace {
    return this
  }

  answered(): void {}
  bodyEnded(): void {}
  failed(): void {}

  end(entry: AccessLogEntry): void {
    entry.trace_id = this.traceId
  }
}

class RecordedRequest implements RequestTrace {
  private lines: string | null = null
  private readonly sc: SpanContext

  constructor(
    private readonly spans: SpanSink,
    private readonly decider: Decider,
    private readonly d: SpanData,
    traceState: TraceState | undefined,
    private readonly method: string,
  ) {
    this.sc = { traceId: d.traceId, spanId: d.spanId, traceFlags: d.sampled ? 1 : 0, traceState, isRemote: false }
  }

  get headerLines(): string {
    return (this.lines ??= headerLines(this.sc))
  }

  attempt(upstream: string, target: { hostname: string; port: number }, n: number): UpstreamTrace {
    const spanId = this.decider.spanId()
    const attributes: Attributes = {
      [ATTR_HTTP_REQUEST_METHOD]: this.method,
      [ATTR_SERVER_ADDRESS]: target.hostname,
      [ATTR_SERVER_PORT]: target.port,
      'portcullis.upstream': upstream,
      'portcullis.attempt': n + 1,
    }
    if (n > 0) attributes[ATTR_HTTP_REQUEST_RESEND_COUNT] = n
    const d: SpanData = {
      name: this.method,
      kind: SpanKind.CLIENT,
      traceId: this.d.traceId,
      spanId,
      parentSpanId: this.d.spanId,
      parentFlags: this.sc.traceFlags,
      parentRemote: false,
      traceState: this.d.traceState,
      sampled: this.d.sampled,
      start: now(),
      end: 0,
      attributes,
      error: false,
      message: null,
    }
    return new RecordedTry(this.spans, d, { ...this.sc, spanId })
  }

  end(entry: AccessLogEntry): void {
    entry.trace_id = this.d.traceId
    if (endWith(this.d.attributes, entry.status as number, entry.gateway_error as string | null)) this.d.error = true
    if (entry.app !== null && entry.app !== undefined) this.d.attributes['portcullis.app'] = entry.app as string
    this.d.end = now()
    this.spans.add(this.d)
  }
}

// A request span's attributes for its answer; true when the span is an error: only for a 5xx
// (the client's 4xx is the client's).
function endWith(a: Attributes, status: number, code: string | null): boolean {
  a[ATTR_HTTP_RESPONSE_STATUS_CODE] = status
  if (code !== null) a['portcullis.gateway_error'] = code
  if (status < 500) return false
  a[ATTR_ERROR_TYPE] = code ?? String(status)
  return true
}

// A request span's name, `METHOD /pattern`, made once per route and method.
const spanNames = new WeakMap<object, Map<string, string>>()
function spanName(ctx: RequestContext): string {
  let byMethod = spanNames.get(ctx.route)
  if (byMethod === undefined) spanNames.set(ctx.route, (byMethod = new Map()))
  let name = byMethod.get(ctx.method)
  if (name === undefined) byMethod.set(ctx.method, (name = `${ctx.method} ${ctx.route.pattern}`))
  return name
}

// The request's decision under the client's trace context: its trace id, whether it is
// recorded, and the caller's span (a valid one, or none) and trace state.
interface Decided {
  traceId: string
  result: SamplingResult
  caller: SpanContext | undefined
  traceState: TraceState | undefined
}
function decided(decider: Decider, parent: Context, name: () => string, routeBound: number | null): Decided {
  const caller = parent === ROOT_CONTEXT ? undefined : trace.getSpanContext(parent)
  // A decision by a ratio needs no name: made only for a span.
  const named = decider.decidesByRatio(caller !== undefined, routeBound) ? '' : name()
  const { traceId, result } = decider.decide(parent, caller?.traceId, named, routeBound)
  return { traceId, result, caller, traceState: result.traceState ?? caller?.traceState }
}

// A recorded SERVER span's data, before its answer.
function serverSpan(decider: Decider, name: string, d: Decided, start: number, attributes: Attributes): SpanData {
  return {
    name,
    kind: SpanKind.SERVER,
    traceId: d.traceId,
    spanId: decider.spanId(),
    parentSpanId: d.caller?.spanId ?? null,
    parentFlags: d.caller?.traceFlags ?? 0,
    parentRemote: d.caller !== undefined,
    traceState: d.traceState?.serialize() ?? null,
    // Recorded and sampled (exported), or recorded only (RECORD: flags 0).
    sampled: d.result.decision === SamplingDecision.RECORD_AND_SAMPLED,
    start,
    end: 0,
    attributes,
    error: false,
    message: null,
  }
}

// `routeBound`: the route's `trace sample` ratio (as ratioBound), or null.
export function requestSpan(tracers: Tracers, ctx: RequestContext, routeBound: number | null = null): RequestTrace {
  const decider = tracers.decider
  const parent = parentOf(ctx.req.headers)
  // Most requests: no caller, a ratio decides, not recorded: two ids and nothing else.
  if (parent === ROOT_CONTEXT && decider.decidesByRatio(false, routeBound)) {
    const { traceId, result } = decider.decide(parent, undefined, '', routeBound)
    if (!decider.recorded(result)) return new UnsampledRequest(traceId, decider.spanId(), undefined)
    return recordedRequest(tracers, ctx, { traceId, result, caller: undefined, traceState: result.traceState })
  }
  const d = decided(decider, parent, () => spanName(ctx), routeBound)
  if (!decider.recorded(d.result)) return new UnsampledRequest(d.traceId, decider.spanId(), d.traceState)
  return recordedRequest(tracers, ctx, d)
}

function recordedRequest({ decider, spans }: Tracers, ctx: RequestContext, d: Decided): RequestTrace {
  const attributes: Attributes = {
    [ATTR_HTTP_REQUEST_METHOD]: ctx.method,
    [ATTR_URL_PATH]: ctx.path,
    [ATTR_URL_SCHEME]: ctx.proto,
    [ATTR_SERVER_ADDRESS]: ctx.host,
    [ATTR_HTTP_ROUTE]: ctx.route.pattern,
    [ATTR_CLIENT_ADDRESS]: ctx.ip,
    'portcullis.route': ctx.route.id,
    'portcullis.request_id': ctx.id,
  }
  const agent = ctx.req.headers.get('user-agent')
  if (agent !== null) attributes[ATTR_USER_AGENT_ORIGINAL] = agent
  return new RecordedRequest(spans, decider, serverSpan(decider, spanName(ctx), d, origin + ctx.start, attributes), d.traceState, ctx.method)
}

// A request answered before it had a route (no route, a bad Host): one span, ended now.
export function earlySpan({ decider, spans }: Tracers, facts: EarlyFacts, status: number): void {
  const d = decided(decider, parentOf(facts.headers), () => facts.method, null)
  if (!decider.recorded(d.result)) return
  const attributes: Attributes = {
    [ATTR_HTTP_REQUEST_METHOD]: facts.method,
    [ATTR_URL_PATH]: facts.path,
    [ATTR_CLIENT_ADDRESS]: facts.ip,
    'portcullis.request_id': facts.id,
  }
  const data = serverSpan(decider, facts.method, d, origin + facts.start, attributes)
  data.error = endWith(attributes, status, facts.gatewayError)
  data.end = now()
  spans.add(data)
}
