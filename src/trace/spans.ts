// A request's span (SERVER) and one span per try at an upstream (CLIENT), with the W3C trace
// context each try sends. Attributes follow the OpenTelemetry HTTP semantic conventions, plus
// portcullis.* for what only the gateway knows. A request the sampler did not pick has no
// span at all (decide.ts): only ids, and its tries send the request's traceparent. A recorded
// request keeps its spans as data (ids chosen up front, times, attributes) and hands them over
// as they end; the SDK makes them in bursts (Burst), where its code runs hot: made one at a
// time, a hundred requests apart at 1%, the same calls took ten to twenty times as long.
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type SpanContext,
  type TextMapGetter,
  type TraceState,
  type Tracer,
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
import { warn } from '../log/events.ts'
import type { Decider } from './decide.ts'

export interface Tracers {
  decider: Decider
  // Where a recorded request's spans go when they end.
  burst: Burst
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

// A recorded span as data until it ends. `parent`: the caller's context for a request span,
// the request span's for a try.
interface SpanRecord {
  name: string
  kind: SpanKind
  traceId: string
  spanId: string
  parent: Context
  root: boolean // a new trace: its id is handed to the SDK too
  result: SamplingResult // the request's decision, its tries' too
  start: number
  end: number
  attributes: Attributes
  error: boolean
  message: string | undefined
}

const BURST_SPANS = 64
const BURST_MS = 50

// Ended spans waiting to be made: made together once BURST_SPANS have ended or BURST_MS after
// the first, each with its own ids, decision, times and attributes, then ended, which queues
// it for the batch export as before.
export class Burst {
  private pending: SpanRecord[] = []
  private timer: ReturnType<typeof setTimeout> | null = null

  constructor(
    private readonly tracer: Tracer,
    private readonly decider: Decider,
  ) {}

  add(r: SpanRecord): void {
    this.pending.push(r)
    if (this.pending.length >= BURST_SPANS) this.flush()
    else this.timer ??= setTimeout(() => this.flush(), BURST_MS)
  }

  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    const spans = this.pending
    this.pending = []
    for (const r of spans) {
      try {
        const span = this.decider.startWith(
          r.root ? r.traceId : null,
          r.result,
          () => this.tracer.startSpan(r.name, { kind: r.kind, startTime: r.start, attributes: r.attributes }, r.parent),
          r.spanId,
        )
        if (r.error) span.setStatus(r.message === undefined ? { code: SpanStatusCode.ERROR } : { code: SpanStatusCode.ERROR, message: r.message })
        span.end(r.end)
      } catch (err) {
        // Never the gateway's failure: the span is lost, and said.
        warn('tracing', `tracing: a span could not be made (${err instanceof Error ? err.message : String(err)})`)
      }
    }
  }
}

class RecordedTry implements UpstreamTrace {
  readonly headerLines: string
  private status: number | null = null
  private bodyDone = false
  private failure: string | null = null
  private ended = false

  constructor(
    private readonly burst: Burst,
    private readonly r: SpanRecord,
    sc: SpanContext,
  ) {
    this.headerLines = headerLines(sc)
  }

  answered(status: number): void {
    this.status = status
    this.r.attributes[ATTR_HTTP_RESPONSE_STATUS_CODE] = status
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
      this.r.attributes[ATTR_ERROR_TYPE] = kind
      this.r.error = true
      this.r.message = message
    }
    this.finish()
  }

  private finish(): void {
    if (this.ended) return
    this.ended = true
    // `cancelled`: the gateway stopped reading (the client left, or a retry on this status).
    if (this.failure !== null && this.failure !== 'cancelled') {
      this.r.attributes[ATTR_ERROR_TYPE] = this.failure
      this.r.error = true
      this.r.message = `the answer's body was cut (${this.failure})`
    } else if (this.status !== null && this.status >= 400) {
      this.r.attributes[ATTR_ERROR_TYPE] = String(this.status)
      this.r.error = true
    }
    this.r.end = now()
    this.burst.add(this.r)
  }
}

// A request the sampler did not pick: the trace continues upstream, nothing is recorded. Its
// tries send the request's traceparent (no span of their own): it is its own UpstreamTrace.
class UnsampledRequest implements RequestTrace, UpstreamTrace {
  private lines: string | null = null

  constructor(
    private readonly traceId: string,
    private readonly spanId: string,
    private readonly traceState: TraceState | undefined,
  ) {}

  get headerLines(): string {
    return (this.lines ??= headerLines({ traceId: this.traceId, spanId: this.spanId, traceFlags: 0, traceState: this.traceState }))
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
    private readonly burst: Burst,
    private readonly decider: Decider,
    private readonly r: SpanRecord,
    flags: number,
    traceState: TraceState | undefined,
    private readonly method: string,
  ) {
    this.sc = { traceId: r.traceId, spanId: r.spanId, traceFlags: flags, traceState, isRemote: false }
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
    const r: SpanRecord = {
      name: this.method,
      kind: SpanKind.CLIENT,
      traceId: this.r.traceId,
      spanId,
      parent: trace.setSpanContext(ROOT_CONTEXT, this.sc),
      root: false,
      result: this.r.result,
      start: now(),
      end: 0,
      attributes,
      error: false,
      message: undefined,
    }
    return new RecordedTry(this.burst, r, { ...this.sc, spanId })
  }

  end(entry: AccessLogEntry): void {
    entry.trace_id = this.r.traceId
    if (endWith(this.r.attributes, entry.status as number, entry.gateway_error as string | null)) this.r.error = true
    if (entry.app !== null && entry.app !== undefined) this.r.attributes['portcullis.app'] = entry.app as string
    this.r.end = now()
    this.burst.add(this.r)
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

// `routeBound`: the route's `trace sample` ratio (as ratioBound), or null.
export function requestSpan({ decider, burst }: Tracers, ctx: RequestContext, routeBound: number | null = null): RequestTrace {
  const parent = parentOf(ctx.req.headers)
  const caller = parent === ROOT_CONTEXT ? undefined : trace.getSpanContext(parent) // a valid one, or none
  // A decision by a ratio needs no name: made only for a span.
  const named = decider.decidesByRatio(caller !== undefined, routeBound) ? null : spanName(ctx)
  const { traceId, result } = decider.decide(parent, caller?.traceId, named ?? '', routeBound)
  const traceState = result.traceState ?? caller?.traceState
  if (!decider.recorded(result)) return new UnsampledRequest(traceId, decider.spanId(), traceState)
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
  const r: SpanRecord = {
    name: named ?? spanName(ctx),
    kind: SpanKind.SERVER,
    traceId,
    spanId: decider.spanId(),
    parent,
    root: caller === undefined,
    result,
    start: origin + ctx.start,
    end: 0,
    attributes,
    error: false,
    message: undefined,
  }
  // Recorded and sampled (exported), or recorded only (RECORD: flags 0).
  const flags = result.decision === SamplingDecision.RECORD_AND_SAMPLED ? 1 : 0
  return new RecordedRequest(burst, decider, r, flags, traceState, ctx.method)
}

// A request answered before it had a route (no route, a bad Host): one span, ended now.
export function earlySpan(tracer: Tracer, facts: EarlyFacts, status: number): void {
  const span = tracer.startSpan(facts.method, { kind: SpanKind.SERVER, startTime: origin + facts.start }, parentOf(facts.headers))
  if (!span.isRecording()) return
  const attributes: Attributes = {
    [ATTR_HTTP_REQUEST_METHOD]: facts.method,
    [ATTR_URL_PATH]: facts.path,
    [ATTR_CLIENT_ADDRESS]: facts.ip,
    'portcullis.request_id': facts.id,
  }
  if (endWith(attributes, status, facts.gatewayError)) span.setStatus({ code: SpanStatusCode.ERROR })
  span.setAttributes(attributes)
  span.end(now())
}
