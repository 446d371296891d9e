// A rewrite script's ctx.upstream: the request the upstream will get, edited through the same
// calls the rewrite directives use (ctx.upstreamPath, ctx.upstreamQuery, ctx.setUpstreamHeader).
import type { RequestContext } from '../runtime/context.ts'
import { canonicalName, isHopByHop, isIdentityHeader, safeHeaderValue } from '../runtime/headers.ts'
import { normalizePath } from '../runtime/normalize.ts'
import { removeParam, setParam } from '../runtime/query.ts'
import type { RewriteContext, UpstreamRequest } from './api.ts'
import { StageContext, type ScriptSite } from './context.ts'

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// Names the gateway writes itself on the upstream request (the forwarding set, tracing, framing).
const GATEWAY_SET = new Set([
  'content-length',
  'expect',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-real-ip',
  'x-request-id',
  'traceparent',
  'tracestate',
])

function headerName(name: unknown, what: string): string {
  if (typeof name !== 'string' || !TOKEN.test(name)) throw new TypeError(`${what}: '${String(name)}' is not a valid header name`)
  const canonical = canonicalName(name)
  if (isHopByHop(name.toLowerCase()) || GATEWAY_SET.has(canonical) || isIdentityHeader(canonical))
    throw new TypeError(`${what}: ${name} is the gateway's to set (hop-by-hop, forwarding, tracing or identity header)`)
  return name
}

function queryName(name: unknown, what: string): string {
  if (typeof name !== 'string' || name === '') throw new TypeError(`${what}: a parameter name is a non-empty string`)
  return name
}

class UpstreamView implements UpstreamRequest {
  #ctx: RequestContext
  #open = true
  constructor(ctx: RequestContext) {
    this.#ctx = ctx
  }
  #check(): RequestContext {
    if (!this.#open) throw new Error("ctx.upstream: the script's time is over; the request went on without this edit")
    return this.#ctx
  }
  get path(): string {
    return this.#ctx.upstreamPath
  }
  set path(v: string) {
    const ctx = this.#check()
    if (typeof v !== 'string' || !v.startsWith('/') || /[?#\s]/.test(v))
      throw new TypeError(`ctx.upstream.path: '${String(v)}' is not a path (it starts with /, and has no query, fragment or spaces)`)
    const norm = normalizePath(v)
    if (!norm) throw new TypeError(`ctx.upstream.path: '${v}' is malformed`)
    ctx.upstreamPath = norm.path
  }
  get query(): string {
    return this.#ctx.upstreamQuery ?? this.#ctx.rawQuery
  }
  set query(v: string) {
    const ctx = this.#check()
    const raw = typeof v === 'string' && v.startsWith('?') ? v.slice(1) : v
    if (typeof raw !== 'string' || /[^\x21-\x7e]|#/.test(raw))
      throw new TypeError('ctx.upstream.query: a query is URL-encoded text without # (setQuery encodes one parameter)')
    ctx.upstreamQuery = raw
  }
  setHeader(name: string, value: string): void {
    const ctx = this.#check()
    const n = headerName(name, 'ctx.upstream.setHeader')
    if (typeof value !== 'string') throw new TypeError(`ctx.upstream.setHeader: the value of ${n} must be a string`)
    ctx.setUpstreamHeader(n, safeHeaderValue(value))
  }
  removeHeader(name: string): void {
    this.#check().setUpstreamHeader(headerName(name, 'ctx.upstream.removeHeader'), null)
  }
  setQuery(name: string, value: string): void {
    const ctx = this.#check()
    const n = queryName(name, 'ctx.upstream.setQuery')
    if (typeof value !== 'string') throw new TypeError(`ctx.upstream.setQuery: the value of ${n} must be a string`)
    ctx.upstreamQuery = setParam(ctx.upstreamQuery ?? ctx.rawQuery, n, value)
  }
  removeQuery(name: string): void {
    const ctx = this.#check()
    ctx.upstreamQuery = removeParam(ctx.upstreamQuery ?? ctx.rawQuery, queryName(name, 'ctx.upstream.removeQuery'))
  }
  static close(v: UpstreamView): void {
    v.#open = false
  }
}

export class RewriteScriptContext extends StageContext implements RewriteContext {
  #ctx: RequestContext
  #upstream: UpstreamView | null = null
  constructor(ctx: RequestContext, site: ScriptSite) {
    super(ctx, site)
    this.#ctx = ctx
  }
  get upstream(): UpstreamRequest {
    return (this.#upstream ??= new UpstreamView(this.#ctx))
  }
  // The script settled or ran out of time: later edits would land on a request already gone on.
  static close(c: RewriteScriptContext): void {
    if (c.#upstream) UpstreamView.close(c.#upstream)
  }
}
