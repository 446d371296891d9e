// What one request carries through the stages, and the shape of a compiled route.
import type { GatewayError } from './gateway-error.ts'
import type { Upgrade } from './websocket.ts'
import type { Identity } from './identity.ts'
import type { ClientCert } from './request.ts'
import type { LimitOutcome } from './limits.ts'
import type { StepInfo, StepRecord } from './decisions.ts'
import type { RouteTracing } from './route-tracing.ts'

export type Stage = 'access' | 'rewrite' | 'proxy' | 'response' | 'log'
// Written once; the compiler and the handler both follow it.
export const STAGES: readonly Stage[] = Object.freeze(['access', 'rewrite', 'proxy', 'response', 'log'])

export interface RequestContext {
  readonly req: Request
  readonly id: string
  readonly start: number
  readonly method: string
  readonly host: string // lower case, without port
  readonly hostHeader: string
  readonly proto: 'http' | 'https'
  readonly peerIp: string
  readonly ip: string // the client, after trusted proxies
  readonly trusted: boolean // the peer is a --trust-proxy address
  // The certificate the client presented on the TLS listener, if any.
  readonly clientCert: ClientCert | null
  readonly path: string // normalised
  readonly rawQuery: string // without `?`
  readonly params: Readonly<Record<string, string>>
  readonly route: CompiledRoute
  // What the upstream will get; the rewrite stage edits these.
  upstreamPath: string
  upstreamQuery: string | null // raw, without `?`; null = pass rawQuery through untouched
  // The headers the upstream gets: the client's (less hop-by-hop, identity and route-owned
  // names), the forwarding set, then what the rewrite stage set. Written straight as text for
  // the proxy; `upstreamHeaders` builds them as an object for those that need one.
  readonly upstreamHeaders: Headers
  upstreamHeaderLines(): string
  // A header for the upstream (null: none), replacing the client's in any spelling. The
  // directive that calls it declares the name in `setsHeaders`, so the client's is dropped.
  setUpstreamHeader(name: string, value: string | null): void
  // Extra headers for every response of this request, errors included (e.g. Deprecation).
  responseHeaders: [string, string][] | null
  bodyLimit: number | null
  // Who is calling, once a `require` directive established it.
  identity: Identity | null
  // The request body read whole by the access stage (a Content-Digest check): the same bytes
  // go to the upstream. Reads once, at most `cap` bytes (and `limit body`), else a gateway error.
  readBody(cap: number): Promise<Uint8Array>
  bufferedBody: Uint8Array | null
  // The route's rate decision (throttle, quota), for the log and metrics.
  limit: LimitOutcome | null
  // `cache response`: what its lookup found (hit, miss, error: the store did not answer).
  cacheLookup: 'hit' | 'miss' | 'error' | null
  upstream: string | null
  upstreamStatus: number | null
  upstreamMs: number | null
  gatewayError: string | null
  bytesIn: number
  bytesOut: number | null // set when the proxy counted the answer's body
  // The proxy's answer is still streaming: it calls onBodyEnd (the observer's) when done.
  bodyPending: boolean
  idSent: boolean // the answer was made with X-Request-Id already
  onBodyEnd: (() => void) | null
  // The request body: none sent, not read yet, handed to the upstream, or left unread
  // because the answer came first (the client connection then closes).
  body: 'none' | 'unread' | 'buffered' | 'forwarding' | 'abandoned'
  // A WebSocket upgrade request on a listener that can upgrade it; `upgraded` once it was.
  readonly upgrade: Upgrade | null
  upgraded: boolean
  // The request's span when tracing is on (src/trace/); null when it is off.
  trace?: RequestTrace | null
  // What each directive decided, in order, when the program records decisions (built with
  // `explain`, src/runtime/decisions.ts); null otherwise.
  decisions?: StepRecord[] | null
}

// Tracing, as the request path sees it. With tracing off there is none: the client's
// traceparent and tracestate then go upstream like any other header.
export interface RequestTrace {
  // traceparent (and tracestate) naming the request's span, as `name: value\r\n` lines.
  readonly headerLines: string
  // One try at an upstream target (`n` = 0 for the first): its span and the lines that name it.
  attempt(upstream: string, target: { hostname: string; port: number }, n: number): UpstreamTrace
  // The request is over (its body delivered): the access log entry says how it went.
  end(entry: AccessLogEntry): void
}

export interface UpstreamTrace {
  readonly headerLines: string
  answered(status: number): void // the answer's head arrived
  bodyEnded(failure: string | null): void // its body was delivered, or cut (the failure kind)
  failed(kind: string, message: string): void // no answer
}

type Maybe<T> = T | Promise<T>
// An access or rewrite step ends the request with the GatewayError it returns or throws, or with
// a Response it throws (an answer of its own, e.g. a script's ctx.respond): header steps of the
// response stage run on either, body steps on neither.
export type AccessFn = (ctx: RequestContext) => Maybe<GatewayError | undefined>
// Sync for header and path edits; a promise only where the body is read (`decrypt request`).
export type RewriteFn = (ctx: RequestContext) => Maybe<GatewayError | undefined>
export type TerminalFn = (ctx: RequestContext) => Maybe<Response>
// A header step of the response stage: edits the answer's headers in place. Header steps run
// on every answer, gateway errors included.
export type ResponseFn = (ctx: RequestContext, headers: Headers, status: number) => void
// A step run when the access or rewrite stage ends the request (a gateway error, or a script's
// answer), before that answer's headers are set: it may add to ctx.responseHeaders, and may
// wait (a store read). It never changes the answer.
export type EarlyAnswerFn = (ctx: RequestContext) => Maybe<void>
// A route's answer to a CORS preflight, made before its access stage (src/runtime/cors.ts).
export type PreflightFn = (ctx: RequestContext) => Response | GatewayError
// A body step of the response stage: takes the answer and returns the one the client gets
// (`encrypt response`, `sign response`, `cache response`). Response steps run in source order;
// body steps only on answers from the terminal (an upstream's, a `respond`) or a lookup, never
// on gateway errors. Throwing a GatewayError replaces the answer with that error.
export interface BodyStep {
  run(ctx: RequestContext, res: Response): Maybe<Response>
  // Runs after the rewrite stage, before the terminal: an answer here replaces the terminal's
  // (a cached answer); it then goes through the response stage like the terminal's would.
  before?(ctx: RequestContext): Maybe<Response | null>
}
export type ResponseStep = ResponseFn | BodyStep
// A field set to undefined is not written (trace_id when the request is not traced).
export interface AccessLogEntry {
  [field: string]: string | number | null | undefined
}
export type LogFn = (ctx: RequestContext, entry: AccessLogEntry) => void

export interface StageFns {
  access: AccessFn
  rewrite: RewriteFn
  proxy: TerminalFn
  response: ResponseFn | BodyStep
  log: LogFn
}

export interface Plan {
  access: AccessFn[]
  rewrite: RewriteFn[]
  // BodyStep.before of the route's body steps, in source order.
  lookups: ((ctx: RequestContext) => Maybe<Response | null>)[]
  terminal: TerminalFn
  response: ResponseStep[]
  log: LogFn[]
  // Run when the access or rewrite stage ends the request (see EarlyAnswerFn).
  early: EarlyAnswerFn[]
  // Set on a route with `cors`: its preflights are answered here, never by the stages.
  preflight?: PreflightFn
}

export interface CompiledRoute {
  id: string // `METHODS PATTERN [host H]`: stable across reloads
  methods: readonly string[] | null // null = every method
  host: string | null
  pattern: string
  location: string // file:line
  plan: Plan
  stageNames: Record<Stage, string[]>
  // Normalised names (lower case, `_` and `.` as `-`) a client may not send upstream.
  protectedHeaders: ReadonlySet<string>
  // Request header name → dropped before forwarding? Filled as names are met (forward.ts).
  forwardVerdicts: Map<string, boolean>
  // The route sets or removes traceparent or tracestate itself: that wins over tracing.
  ownsTraceContext: boolean
  // The route's own tracing (`trace off`, `trace sample`); null: the gateway's settings.
  tracing: RouteTracing | null
  // When the program records decisions: every step of the route in plan order (what a trace
  // lists as not reached when the request ended before it).
  steps?: readonly StepInfo[]
}
