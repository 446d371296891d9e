// One request through one Program: route, then the stages in STAGES order.
import type { RequestContext } from './context.ts'
import { GatewayError } from './gateway-error.ts'
import type { IpMatcher } from './ip.ts'
import { normalizePath, splitTarget } from './normalize.ts'
import { GatewayRequest, type Peer } from './request.ts'
import { newRequestId } from './request-id.ts'
import type { Router } from './router.ts'
import { preflightMethod } from './cors.ts'
import { failure } from '../log/events.ts'

// What is known of a request that ended before it reached a route's stages.
export interface EarlyFacts {
  id: string
  method: string
  path: string
  rawQuery: string
  ip: string
  start: number
  gatewayError: string
  headers?: Headers // the client's (tracing reads traceparent)
}

export interface RequestObserver {
  // A request has its route and context, before its stages (tracing starts its span here).
  begin?(ctx: RequestContext): void
  done(facts: RequestContext | EarlyFacts, res: Response): Response
}

export interface HandlerOptions {
  router: Router
  trustProxy: IpMatcher | null
  observer: RequestObserver
  inflight: Inflight
  // The program records decisions (src/runtime/decisions.ts): each request starts a record.
  explain?: boolean
}

// Told which request context a request got (null, and the gateway error, when it got no route):
// Program.explain reads its decisions once the answer is made.
export type Explainer = (ctx: RequestContext | null, miss: GatewayError | null) => void

// Requests started on one program and not yet answered, so a reload can dispose of the old
// program once its last request is done.
export interface Inflight {
  count: number
  idle: (() => void) | null
}

export type { Peer } from './request.ts'

const HOST_HEADER = /^[A-Za-z0-9.\-_~]*(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/
const REQUEST_ID = /^[A-Za-z0-9._:\-]{1,128}$/

function hostOnly(hostHeader: string): string {
  const h = hostHeader.toLowerCase()
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1)
  const colon = h.indexOf(':')
  return colon === -1 ? h : h.slice(0, colon)
}

// The right-most address in X-Forwarded-For that is not a trusted proxy.
function clientIp(peer: string, xff: string | null, trusted: IpMatcher): string {
  if (!xff) return peer
  const hops = xff
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  for (let i = hops.length - 1; i >= 0; i--) if (!trusted(hops[i]!)) return hops[i]!
  return hops[0] ?? peer
}

export function createHandler(opts: HandlerOptions): (req: Request, peer: Peer, seen?: Explainer) => Promise<Response | undefined> {
  const { router, trustProxy, observer, inflight } = opts
  const explain = opts.explain === true

  function early(
    req: Request,
    e: GatewayError,
    id: string,
    path: string,
    rawQuery: string,
    ip: string,
    start: number,
    seen?: Explainer,
  ): Promise<Response> {
    if (seen) seen(null, e)
    return oneAnswer(req, e.toResponse(id), req.body === null ? 'none' : 'unread', id).then((res) =>
      observer.done({ id, method: req.method, path, rawQuery, ip, start, gatewayError: e.code, headers: req.headers }, res),
    )
  }

  return async function handle(req, peer, seen) {
    inflight.count++
    try {
      const start = performance.now()
      const headers = req.headers
      const method = req.method
      const trusted = trustProxy !== null && trustProxy(peer.ip)
      const incomingId = trusted ? headers.get('x-request-id') : null
      const id = incomingId && REQUEST_ID.test(incomingId) ? incomingId : newRequestId()
      const ip = trusted ? clientIp(peer.ip, headers.get('x-forwarded-for'), trustProxy!) : peer.ip
      const [rawPath, rawQuery] = splitTarget(req.url)

      const hostHeader = headers.get('host') ?? ''
      if (!HOST_HEADER.test(hostHeader)) {
        return await early(
          req,
          new GatewayError('bad_request', 'the Host header is missing a valid single value'),
          id,
          rawPath,
          rawQuery,
          ip,
          start,
          seen,
        )
      }
      const norm = normalizePath(rawPath)
      if (!norm) return await early(req, new GatewayError('bad_request', 'the request path is malformed'), id, rawPath, rawQuery, ip, start, seen)
      const host = hostOnly(hostHeader)
      let found = router.lookup(method, host, norm.segments)
      // A CORS preflight belongs to the route that would serve the method it asks about: a
      // route with `cors` answers it even when its methods leave OPTIONS out.
      let preflight = false
      if (method === 'OPTIONS') {
        const asked = preflightMethod(req)
        const target = asked === null ? null : router.lookup(asked, host, norm.segments)
        if (target?.kind === 'found' && target.route.plan.preflight) {
          found = target
          preflight = true
        } else preflight = asked !== null && found.kind === 'found' && found.route.plan.preflight !== undefined
      }
      if (found.kind === 'none')
        return await early(req, new GatewayError('no_route', `no route for ${method} ${norm.path}`), id, rawPath, rawQuery, ip, start, seen)
      if (found.kind === 'method') {
        const e = new GatewayError('method_not_allowed', `${method} is not allowed here`, { allow: found.allow.join(', ') })
        return await early(req, e, id, rawPath, rawQuery, ip, start, seen)
      }

      const ctx = new GatewayRequest(req, id, start, method, host, hostHeader, peer, trusted, ip, norm.path, rawQuery, found.params, found.route)
      if (explain) ctx.decisions = []
      if (seen) seen(ctx, null)
      if (observer.begin) observer.begin(ctx)
      if (preflight) return await answerPreflight(ctx, observer)
      const plan = ctx.route.plan
      let res: Response
      let beforeLookups = true // until the access and rewrite stages have passed
      // The stages in STAGES order. The headers the access stage asked for on every answer
      // (Deprecation, RateLimit) come before the response stage, which may change or remove
      // them. Its header steps run on gateway errors too; its body steps only on the
      // terminal's (or a lookup's) answer.
      try {
        for (const f of plan.access) {
          const r = f(ctx)
          const e = r instanceof Promise ? await r : r
          if (e) throw e
        }
        for (const f of plan.rewrite) {
          const r = f(ctx)
          const e = r instanceof Promise ? await r : r
          if (e) throw e
        }
        beforeLookups = false
        let found: Response | null = null
        for (const f of plan.lookups) {
          const r = f(ctx)
          found = r instanceof Promise ? await r : r
          if (found) break
        }
        if (found) res = found
        else {
          const t = plan.terminal(ctx)
          res = t instanceof Promise ? await t : t
        }
        if (ctx.responseHeaders) for (const [n, v] of ctx.responseHeaders) res.headers.set(n, v)
        for (const f of plan.response) {
          if (typeof f === 'function') f(ctx, res.headers, res.status)
          else {
            const r = f.run(ctx, res)
            res = r instanceof Promise ? await r : r
          }
        }
      } catch (err) {
        // A Response thrown by an access or rewrite step is an answer, not an error (a script's
        // ctx.respond): it goes out like a gateway error does, without being one.
        if (err instanceof Response) res = err
        else {
          const e = err instanceof GatewayError ? err : internalError(err, ctx)
          res = e.toResponse(id)
          ctx.gatewayError = e.code
        }
        // An answer of the access or rewrite stage: the route's early-answer steps add their
        // headers (the RateLimit fields of a 401 given before the throttles' decision).
        if (beforeLookups)
          for (const f of plan.early) {
            try {
              const r = f(ctx)
              if (r instanceof Promise) await r
            } catch (err2) {
              internalError(err2, ctx)
            }
          }
        if (ctx.responseHeaders) for (const [n, v] of ctx.responseHeaders) res.headers.set(n, v)
        try {
          for (const f of plan.response) if (typeof f === 'function') f(ctx, res.headers, res.status)
        } catch (err2) {
          internalError(err2, ctx)
        }
      }
      // Upgraded to a WebSocket: logged as 101 now; the listener sends nothing more.
      if (ctx.upgraded) return void observer.done(ctx, res)
      if (ctx.body === 'unread' || ctx.body === 'abandoned') res = await oneAnswer(req, res, ctx.body, id)
      else if (!ctx.idSent) res.headers.set('x-request-id', id)
      return observer.done(ctx, res)
    } finally {
      if (--inflight.count === 0 && inflight.idle) inflight.idle()
    }
  }
}

const DRAIN_BYTES = 64 * 1024
const DRAIN_MS = 1_000

// An answer given before the request body was read: a small body that has arrived is read
// and dropped, so the connection can carry the next request; otherwise the connection closes
// after this answer (nginx's lingering close), so the body's bytes are never taken for a
// request and no second answer follows.
async function oneAnswer(req: Request, res: Response, body: RequestContext['body'], id: string): Promise<Response> {
  res.headers.set('x-request-id', id)
  if (body === 'unread' && req.body !== null && (await drained(req, req.body))) return res
  if (body !== 'none' && body !== 'buffered') res.headers.set('connection', 'close')
  return res
}

async function drained(req: Request, body: ReadableStream<Uint8Array>): Promise<boolean> {
  const declared = req.headers.get('content-length')
  if (declared !== null && Number(declared) > DRAIN_BYTES) return false
  const reader = body.getReader()
  let late = false
  const timer = setTimeout(() => {
    late = true
    void reader.cancel().catch(() => {})
  }, DRAIN_MS)
  let total = 0
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (late) return false
      if (done) return true
      total += value.byteLength
      if (total > DRAIN_BYTES) {
        void reader.cancel().catch(() => {})
        return false
      }
    }
  } catch {
    return false
  } finally {
    clearTimeout(timer)
  }
}

// A CORS preflight, answered by the route's `cors` before its access stage (a browser sends no
// credentials with it) and never proxied; header steps run on it as on any gateway answer.
async function answerPreflight(ctx: GatewayRequest, observer: RequestObserver): Promise<Response> {
  const plan = ctx.route.plan
  let res: Response
  try {
    const r = plan.preflight!(ctx)
    if (r instanceof GatewayError) ctx.gatewayError = r.code
    res = r instanceof GatewayError ? r.toResponse(ctx.id) : r
    for (const f of plan.response) if (typeof f === 'function') f(ctx, res.headers, res.status)
  } catch (err) {
    const e = err instanceof GatewayError ? err : internalError(err, ctx)
    ctx.gatewayError = e.code
    res = e.toResponse(ctx.id)
  }
  if (ctx.body === 'unread' || ctx.body === 'abandoned') res = await oneAnswer(ctx.req, res, ctx.body, ctx.id)
  else res.headers.set('x-request-id', ctx.id)
  return observer.done(ctx, res)
}

function internalError(err: unknown, ctx: RequestContext): GatewayError {
  failure('request', `request ${ctx.id} on ${ctx.route.id} failed: ${(err as Error)?.stack ?? err}`, { request_id: ctx.id, route: ctx.route.id })
  return new GatewayError('internal_error', 'the gateway failed to handle this request')
}
