// The request headers an upstream gets: the client's own, less hop-by-hop, identity and
// route-protected names, plus the forwarding set the gateway vouches for. Nothing else is
// added (no Accept, User-Agent or Accept-Encoding of the gateway's own).
import type { CompiledRoute, RequestTrace } from './context.ts'
import { canonicalName, MAX_KEPT_NAME, isHopByHop, isIdentityHeader } from './headers.ts'

export interface ForwardFacts {
  readonly trusted: boolean // the peer is a --trust-proxy address
  readonly peerIp: string
  readonly ip: string // the client, after trusted proxies
  readonly proto: string
  readonly port: number // the listener's port
  readonly hostHeader: string
  readonly id: string
  readonly consumer: string | null // the identified app: X-Consumer
  // Tracing on: the client's traceparent and tracestate are replaced by the gateway's.
  readonly trace?: RequestTrace | null
  // Names (canonical) this request sets that the route does not own: the client's are dropped.
  readonly replaced?: ReadonlySet<string> | null
}

const TRACE_CONTEXT = new Set(['traceparent', 'tracestate'])

// Set by the gateway from the facts above, whatever the client sent.
const REWRITTEN = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-real-ip', 'x-request-id'])
// From a trusted proxy these pass through; from anyone else they are dropped.
const TRUSTED_ONLY = new Set(['forwarded', 'x-forwarded-prefix'])

// Per route: header name (as Headers lists it, lower case) → dropped? Names repeat, so the
// verdicts are remembered, a bounded number of them, and none of a name longer than real
// ones are (the client picks the names: a thousand of 8 KB would hold megabytes per route).
function dropped(route: CompiledRoute, name: string): boolean {
  const cache = route.forwardVerdicts
  let d = cache.get(name)
  if (d === undefined) {
    const canonical = canonicalName(name)
    d = isHopByHop(name) || name === 'expect' || REWRITTEN.has(name) || isIdentityHeader(canonical) || route.protectedHeaders.has(canonical)
    if (cache.size < 1024 && name.length <= MAX_KEPT_NAME) cache.set(name, d)
  }
  return d
}

function connectionNamed(incoming: Headers): string[] | null {
  const c = incoming.get('connection')
  return c
    ? c
        .toLowerCase()
        .split(',')
        .map((t) => t.trim())
    : null
}

// The forwarding set; a name a directive of the route owns (sets or removes) is left to it.
function forwardingValues(incoming: Headers, f: ForwardFacts): [string, string][] {
  const xff = f.trusted ? incoming.get('x-forwarded-for') : null
  return [
    ['x-forwarded-for', xff ? `${xff}, ${f.peerIp}` : f.peerIp],
    ['x-forwarded-proto', (f.trusted && incoming.get('x-forwarded-proto')) || f.proto],
    ['x-forwarded-host', (f.trusted && incoming.get('x-forwarded-host')) || f.hostHeader],
    ['x-forwarded-port', (f.trusted && incoming.get('x-forwarded-port')) || String(f.port)],
    ['x-real-ip', f.ip],
    ['x-request-id', f.id],
  ]
}

// X-Consumer for an identified app (the client's own was dropped as an identity header).
const consumerLine = (route: CompiledRoute, f: ForwardFacts) =>
  f.consumer !== null && !route.protectedHeaders.has('x-consumer') ? `x-consumer: ${f.consumer}\r\n` : ''

function keep(route: CompiledRoute, name: string, named: string[] | null, trusted: boolean): boolean {
  if (dropped(route, name)) return false
  if (named !== null && named.includes(name)) return false
  return trusted || !TRUSTED_ONLY.has(name)
}

// The header block as text (`name: value\r\n` lines), straight from the client's headers.
export function forwardedHeaderLines(incoming: Headers, route: CompiledRoute, f: ForwardFacts): string {
  const named = connectionNamed(incoming)
  const traced = f.trace != null
  let out = ''
  for (const [name, value] of incoming)
    if (keep(route, name, named, f.trusted) && !(traced && TRACE_CONTEXT.has(name)) && !f.replaced?.has(canonicalName(name)))
      out += `${name}: ${value}\r\n`
  for (const [name, value] of forwardingValues(incoming, f)) if (!route.protectedHeaders.has(name)) out += `${name}: ${value}\r\n`
  return out + consumerLine(route, f)
}

// The same as a Headers object (the WebSocket handshake takes one).
export function forwardedHeaders(incoming: Headers, route: CompiledRoute, f: ForwardFacts): Headers {
  const named = connectionNamed(incoming)
  const out = new Headers()
  for (const [name, value] of incoming) if (keep(route, name, named, f.trusted) && !f.replaced?.has(canonicalName(name))) out.append(name, value)
  if (f.trace != null && !route.ownsTraceContext) {
    for (const name of TRACE_CONTEXT) out.delete(name)
    for (const line of f.trace.headerLines.split('\r\n')) if (line) out.set(line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2))
  }
  for (const [name, value] of forwardingValues(incoming, f)) if (!route.protectedHeaders.has(name)) out.set(name, value)
  if (f.consumer !== null && !route.protectedHeaders.has('x-consumer')) out.set('x-consumer', f.consumer)
  return out
}
