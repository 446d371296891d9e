// A request's span (SERVER) and one span per try at an upstream (CLIENT), with the W3C trace
// context each try sends. Attributes follow the OpenTelemetry HTTP semantic conventions, plus
// portcullis.* for what only the gateway knows. A request the sampler did not pick has no
// span at all (decide.ts): only ids, and its tries send the request's traceparent.
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type SpanContext,
  type TextMapGetter,
  type TraceState,
  type Tracer,
} from '@opentelemetry/api'
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

export interface Tracers {
  tracer: Tracer
  decider: Decider
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

class UnrecordedTry implements UpstreamTrace {
  constructor(readonly headerLines: string) {}
  answered(): void {}
  bodyEnded(): void {}
  failed(): void {}
}

class UpstreamTry implements UpstreamTrace {
  readonly headerLines: string
  private status: number | null = null
  private bodyDone = false
  private failure: string | null = null
  private ended = false

  constructor(private readonly span: Span) {
    this.headerLines = headerLines(span.spanContext())
  }

  answered(status: number): void {
    this.status = status
    this.span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status)
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
      this.span.setAttribute(ATTR_ERROR_TYPE, kind)
      this.span.setStatus({ code: SpanStatusCode.ERROR, message })
    }
    this.finish()
  }

  private finish(): void {
    if (this.ended) return
    this.ended = true
    // `cancelled`: the gateway stopped reading (the client left, or a retry on this status).
    if (this.failure !== null && this.failure !== 'cancelled') {
      this.span.setAttribute(ATTR_ERROR_TYPE, this.failure)
      this.span.setStatus({ code: SpanStatusCode.ERROR, message: `the answer's body was cut (${this.failure})` })
    } else if (this.status !== null && this.status >= 400) {
      this.span.setAttribute(ATTR_ERROR_TYPE, String(this.status))
      this.span.setStatus({ code: SpanStatusCode.ERROR })
    }
    this.span.end(now())
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

class RequestSpan implements RequestTrace {
  private lines: string | null = null
  private unrecorded: UnrecordedTry | null = null

  constructor(
    private readonly tracer: Tracer,
    private readonly span: Span,
    private readonly method: string,
  ) {}

  get headerLines(): string {
    return (this.lines ??= headerLines(this.span.spanContext()))
  }

  attempt(upstream: string, target: { hostname: string; port: number }, n: number): UpstreamTrace {
    if (!this.span.isRecording()) return (this.unrecorded ??= new UnrecordedTry(this.headerLines))
    const span = this.tracer.startSpan(
      this.method,
      {
        kind: SpanKind.CLIENT,
        startTime: now(),
        attributes: {
          [ATTR_HTTP_REQUEST_METHOD]: this.method,
          [ATTR_SERVER_ADDRESS]: target.hostname,
          [ATTR_SERVER_PORT]: target.port,
          'portcullis.upstream': upstream,
          'portcullis.attempt': n + 1,
          ...(n > 0 ? { [ATTR_HTTP_REQUEST_RESEND_COUNT]: n } : {}),
        },
      },
      trace.setSpan(ROOT_CONTEXT, this.span),
    )
    return new UpstreamTry(span)
  }

  end(entry: AccessLogEntry): void {
    entry.trace_id = this.span.spanContext().traceId
    if (!this.span.isRecording()) return
    endWith(this.span, entry.status as number, entry.gateway_error as string | null)
    if (entry.app !== null) this.span.setAttribute('portcullis.app', entry.app as string)
    this.span.end(now())
  }
}

function endWith(span: Span, status: number, code: string | null): void {
  span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status)
  if (code !== null) span.setAttribute('portcullis.gateway_error', code)
  // A server span is an error only for a 5xx (the client's 4xx is the client's).
  if (status >= 500) {
    span.setAttribute(ATTR_ERROR_TYPE, code ?? String(status))
    span.setStatus({ code: SpanStatusCode.ERROR })
  }
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

export function requestSpan({ tracer, decider }: Tracers, ctx: RequestContext): RequestTrace {
  const parent = parentOf(ctx.req.headers)
  const caller = parent === ROOT_CONTEXT ? undefined : trace.getSpanContext(parent) // a valid one, or none
  // A new trace under a ratio sampler is decided without its name: made only for a span.
  const named = caller === undefined && decider.decidesNewTraces ? null : spanName(ctx)
  const { traceId, result } = decider.decide(parent, caller?.traceId, named ?? '')
  if (!decider.recorded(result)) return new UnsampledRequest(traceId, decider.spanId(), result.traceState ?? caller?.traceState)
  const name = named ?? spanName(ctx)
  const span = decider.startWith(caller ? null : traceId, result, () =>
    tracer.startSpan(name, { kind: SpanKind.SERVER, startTime: origin + ctx.start }, parent),
  )
  if (span.isRecording()) {
    span.setAttributes({
      [ATTR_HTTP_REQUEST_METHOD]: ctx.method,
      [ATTR_URL_PATH]: ctx.path,
      [ATTR_URL_SCHEME]: ctx.proto,
      [ATTR_SERVER_ADDRESS]: ctx.host,
      [ATTR_HTTP_ROUTE]: ctx.route.pattern,
      [ATTR_CLIENT_ADDRESS]: ctx.ip,
      'portcullis.route': ctx.route.id,
      'portcullis.request_id': ctx.id,
    })
    const agent = ctx.req.headers.get('user-agent')
    if (agent !== null) span.setAttribute(ATTR_USER_AGENT_ORIGINAL, agent)
  }
  return new RequestSpan(tracer, span, ctx.method)
}

// A request answered before it had a route (no route, a bad Host): one span, ended now.
export function earlySpan(tracer: Tracer, facts: EarlyFacts, status: number): void {
  const span = tracer.startSpan(facts.method, { kind: SpanKind.SERVER, startTime: origin + facts.start }, parentOf(facts.headers))
  if (!span.isRecording()) return
  span.setAttributes({
    [ATTR_HTTP_REQUEST_METHOD]: facts.method,
    [ATTR_URL_PATH]: facts.path,
    [ATTR_CLIENT_ADDRESS]: facts.ip,
    'portcullis.request_id': facts.id,
  })
  endWith(span, status, facts.gatewayError)
  span.end(now())
}
