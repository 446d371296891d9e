// One request through one Program: route, then the stages in STAGES order.
import type { CompiledRoute, RequestContext } from './context.ts'
import { GatewayError } from './gateway-error.ts'
import { upstreamRequestHeaders } from './headers.ts'
import type { IpMatcher } from './ip.ts'
import { normalizePath, splitTarget } from './normalize.ts'
import type { Router } from './router.ts'

// What is known of a request that ended before it reached a route's stages.
export interface EarlyFacts {
  id: string
  method: string
  path: string
  rawQuery: string
  ip: string
  start: number
  gatewayError: string
}

export interface RequestObserver {
  done(facts: RequestContext | EarlyFacts, res: Response): Response
}

export interface HandlerOptions {
  router: Router
  trustProxy: IpMatcher | null
  observer: RequestObserver
}

export interface Peer {
  ip: string
  tls: boolean
}

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

export function createHandler(opts: HandlerOptions): (req: Request, peer: Peer) => Promise<Response> {
  const { router, trustProxy, observer } = opts

  return async function handle(req, peer) {
    const start = performance.now()
    const trusted = trustProxy !== null && trustProxy(peer.ip)
    const incomingId = trusted ? req.headers.get('x-request-id') : null
    const id = incomingId && REQUEST_ID.test(incomingId) ? incomingId : crypto.randomUUID()
    const ip = trusted ? clientIp(peer.ip, req.headers.get('x-forwarded-for'), trustProxy!) : peer.ip
    const [rawPath, rawQuery] = splitTarget(req.url)
    const early = (e: GatewayError) =>
      observer.done({ id, method: req.method, path: rawPath, rawQuery, ip, start, gatewayError: e.code }, e.toResponse(id))

    const hostHeader = req.headers.get('host') ?? ''
    if (!HOST_HEADER.test(hostHeader)) return early(new GatewayError('bad_request', 'the Host header is missing a valid single value'))
    const norm = normalizePath(rawPath)
    if (!norm) return early(new GatewayError('bad_request', 'the request path is malformed'))
    const host = hostOnly(hostHeader)
    const found = router.lookup(req.method, host, norm.segments)
    if (found.kind === 'none') return early(new GatewayError('no_route', `no route for ${req.method} ${norm.path}`))
    if (found.kind === 'method') {
      return early(new GatewayError('method_not_allowed', `${req.method} is not allowed here`, { allow: found.allow.join(', ') }))
    }

    const route: CompiledRoute = found.route
    const ctx: RequestContext = {
      req,
      id,
      start,
      method: req.method,
      host,
      hostHeader,
      proto: peer.tls ? 'https' : 'http',
      peerIp: peer.ip,
      ip,
      path: norm.path,
      rawQuery,
      params: found.params,
      route,
      upstreamPath: norm.path,
      upstreamQuery: null,
      // The copy the upstream will get; access directives read ctx.req.headers, as the client sent them.
      upstreamHeaders: forwardedHeaders(req.headers, route, trusted, peer.ip, peer.tls ? 'https' : 'http', hostHeader, id),
      responseHeaders: null,
      bodyLimit: null,
      bodyLimitExceeded: false,
      app: null,
      user: null,
      upstream: null,
      upstreamStatus: null,
      upstreamMs: null,
      gatewayError: null,
      bytesIn: 0,
    }
    let res: Response
    try {
      res = await run(ctx)
    } catch (err) {
      const e = err instanceof GatewayError ? err : internalError(err, ctx)
      res = e.toResponse(id)
      ctx.gatewayError = e.code
    }
    if (ctx.responseHeaders) for (const [n, v] of ctx.responseHeaders) res.headers.set(n, v)
    return observer.done(ctx, res)
  }
}

// Identity, protected and hop-by-hop headers removed; X-Forwarded-* and X-Request-Id set.
function forwardedHeaders(
  incoming: Headers,
  route: CompiledRoute,
  trusted: boolean,
  peerIp: string,
  proto: string,
  hostHeader: string,
  id: string,
): Headers {
  const h = upstreamRequestHeaders(incoming, route.protectedHeaders)
  const xff = trusted ? incoming.get('x-forwarded-for') : null
  h.set('x-forwarded-for', xff ? `${xff}, ${peerIp}` : peerIp)
  h.set('x-forwarded-proto', (trusted && incoming.get('x-forwarded-proto')) || proto)
  h.set('x-forwarded-host', (trusted && incoming.get('x-forwarded-host')) || hostHeader)
  if (!trusted) h.delete('forwarded')
  h.set('x-request-id', id)
  return h
}

function internalError(err: unknown, ctx: RequestContext): GatewayError {
  console.error(`portcullis: request ${ctx.id} on ${ctx.route.id} failed: ${(err as Error)?.stack ?? err}`)
  return new GatewayError('internal_error', 'the gateway failed to handle this request')
}

async function run(ctx: RequestContext): Promise<Response> {
  const plan = ctx.route.plan
  for (const f of plan.access) {
    const r = f(ctx)
    const e = r instanceof Promise ? await r : r
    if (e) throw e
  }
  for (const f of plan.rewrite) {
    const e = f(ctx)
    if (e) throw e
  }
  const t = plan.terminal(ctx)
  const res = t instanceof Promise ? await t : t
  for (const f of plan.response) f(ctx, res.headers, res.status)
  return res
}
