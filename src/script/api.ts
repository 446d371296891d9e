// The API a `script` directive hands its module (docs/scripts.md). Types only: scripts import
// them so their editor checks them, e.g.
//
//   import type { AccessScript } from 'portcullis/script'
//   export default (async (ctx) => { … }) satisfies AccessScript
//
// A script sees only what its context holds: the request, who is calling (never a secret or
// key), the upstream request or the answer where its stage has them, and its route's values.

export type Awaitable<T> = T | Promise<T>

// The request as the client sent it (the path normalised). Reading it changes nothing.
export interface ScriptRequest {
  readonly id: string // the request id, also sent upstream as X-Request-Id
  readonly method: string
  readonly host: string // lower case, without the port
  readonly path: string // normalised: percent-decoded unreserved bytes, dot-segments resolved
  readonly query: URLSearchParams // a copy of the client's query: edit the upstream's with ctx.upstream
  readonly headers: ReadonlyHeaders
  readonly ip: string // the client, after --trust-proxy peers
  readonly params: Readonly<Record<string, string>> // the route pattern's captures
  readonly route: string // the route's id, e.g. `GET /api/v1/orders/{id}`
}

export interface ReadonlyHeaders extends Iterable<[string, string]> {
  get(name: string): string | null
  has(name: string): boolean
  entries(): IterableIterator<[string, string]>
  forEach(fn: (value: string, name: string) => void): void
}

// The calling app, once a `require` directive identified it: no key id, secret, API key,
// public key or certificate.
export interface ScriptApp {
  readonly name: string
  readonly meta: Readonly<Record<string, string>>
  readonly tier: string | null
  readonly group: string | null
}

export interface ScriptUser {
  readonly id: string
  readonly info: Readonly<Record<string, unknown>> // a session's user info, or a JWT's claims
}

export type AuthMethod = 'hmac' | 'jwt' | 'mtls' | 'key' | 'session'

// The gateway error codes (README, "Gateway errors") a script may answer with.
export type RefusalCode =
  | 'bad_request'
  | 'unauthenticated'
  | 'forbidden'
  | 'no_route'
  | 'method_not_allowed'
  | 'payload_too_large'
  | 'rate_limited'
  | 'quota_exceeded'
  | 'retired'
  | 'blocked'
  | 'upstream_unavailable'
  | 'store_unavailable'
  | 'bad_gateway'
  | 'upstream_timeout'
  | 'internal_error'

declare const verdict: unique symbol
// What ctx.refuse(…) and ctx.respond(…) make: return it (or throw it) to end the request.
export interface Refusal {
  readonly [verdict]: 'refusal'
}
export interface Answer {
  readonly [verdict]: 'answer'
}

// A body: a string (text/plain; charset=utf-8 unless the headers say otherwise), bytes
// (application/octet-stream), or any other value, sent as JSON (application/json).
export type AnswerBody = string | Uint8Array | number | boolean | object | null

// The route's own values in the store: JSON values under string keys (up to 256 characters;
// a value up to 64 KiB as JSON). Every script of a route shares them, across reloads and, with
// --redis, across instances; no other route's values, app record or gateway data is reachable.
// A call rejects when the store does not answer (within a second); uncaught, that ends the
// request with 503 store_unavailable.
export interface ScriptKV {
  get<T = unknown>(key: string): Promise<T | null>
  // ttlMs: the value expires after that long; without it, it stays until deleted (in the memory
  // store, until the room is needed by newer values).
  set(key: string, value: unknown, options?: { ttlMs?: number }): Promise<void>
  delete(key: string): Promise<boolean> // true when there was a value
}

export type LogFieldValue = string | number | boolean | null

export interface ScriptContext {
  readonly request: ScriptRequest
  readonly app: ScriptApp | null
  readonly user: ScriptUser | null
  readonly jwt: Readonly<Record<string, unknown>> | null // the verified claims of `require jwt`
  readonly via: AuthMethod | null // how the caller was identified
  readonly kv: ScriptKV
  // An event on the gateway's event log (stderr), with the route and script: console.log would
  // write into the access log on stdout.
  log(message: string, fields?: Record<string, LogFieldValue>): void
  // A gateway error: RFC 9457 body, Gateway-Error header, the code's status.
  refuse(code: RefusalCode, detail?: string, headers?: Record<string, string>): Refusal
  // An answer of the script's own: in the access and rewrite stages it ends the request (the
  // response stage's header directives still run on it); in the response stage it replaces
  // the answer.
  respond(status: number, body?: AnswerBody, headers?: Record<string, string>): Answer
}

export type AccessContext = ScriptContext

// The request the upstream will get, as the rewrite stage has built it so far.
export interface UpstreamRequest {
  path: string // set: normalised; must start with `/`, no query or fragment
  query: string // raw, without `?`; set it whole, or edit one parameter below
  setHeader(name: string, value: string): void // replaces the client's in any `_`/`.` spelling
  removeHeader(name: string): void
  setQuery(name: string, value: string): void
  removeQuery(name: string): void
}

export interface RewriteContext extends ScriptContext {
  readonly upstream: UpstreamRequest
}

// The answer of the route's terminal (the upstream's, or `respond`'s). Its body is read only
// when the script asks for it; a script that only edits headers lets it stream through.
export interface ScriptResponse {
  readonly status: number
  readonly headers: Headers // edit in place (not Gateway-Error, nor the framing headers)
  body(): Promise<Uint8Array> // read whole, at most the directive's `max` (502 beyond); decoded when gzip, deflate, br or zstd
  text(): Promise<string>
  json<T = unknown>(): Promise<T>
  setBody(body: AnswerBody): void // the client gets this body instead (Content-Type unchanged)
}

export interface ResponseContext extends ScriptContext {
  readonly response: ScriptResponse
}

export interface LogContext extends Omit<ScriptContext, 'refuse' | 'respond'> {
  readonly status: number // what the client got (499 when it left first)
  readonly entry: Readonly<Record<string, string | number | null>> // the access-log line
  // Adds a field to this request's access-log line (and the sinks of `log to` after it).
  // Only synchronously: after the script's first `await`, the line is written.
  addField(name: string, value: LogFieldValue): void
}

export type AccessScript = (ctx: AccessContext) => Awaitable<void | Refusal | Answer>
export type RewriteScript = (ctx: RewriteContext) => Awaitable<void | Refusal | Answer>
export type ResponseScript = (ctx: ResponseContext) => Awaitable<void | Refusal | Answer>
export type LogScript = (ctx: LogContext) => Awaitable<void>
