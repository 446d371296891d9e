// The request context as a class: one shape for every request. The upstream's headers are
// written once as text when the request is sent; directives only record their edits.
import type { CompiledRoute, RequestContext, RequestTrace } from './context.ts'
import type { Upgrade } from './websocket.ts'
import { forwardedHeaderLines, forwardedHeaders, type ForwardFacts } from './forward.ts'
import { canonicalName } from './headers.ts'
import { GatewayError } from './gateway-error.ts'
import { joined, readUpTo } from './body.ts'
import type { Identity } from './identity.ts'
import type { LimitOutcome } from './limits.ts'
import type { StepRecord } from './decisions.ts'

// The certificate a client presented on the TLS listener (src/server/client-cert.ts), read once
// per connection. The listener asks for one only with --client-ca, and never demands one.
export interface ClientCert {
  sha256: string // lower-case hex SHA-256 of the DER, as `openssl x509 -fingerprint -sha256` without colons
  authorized: boolean // chains to --client-ca and is within its validity
  reason: string | null // why not authorized (an OpenSSL code such as CERT_HAS_EXPIRED), for logs
  subject: string | null // e.g. `CN=alice, O=Acme`
}

export interface Peer {
  ip: string
  tls: boolean
  port?: number // the listener's port (X-Forwarded-Port)
  // Set by the listener for a request that asks to upgrade (h2c upgrades are ignored).
  upgrade?: Upgrade | null
  // On the TLS listener with --client-ca: the client's certificate, null when it presented none.
  clientCert?: ClientCert | null
}

export class GatewayRequest implements RequestContext, ForwardFacts {
  upstreamPath: string
  upstreamQuery: string | null = null
  responseHeaders: [string, string][] | null = null
  bodyLimit: number | null = null
  identity: Identity | null = null
  bufferedBody: Uint8Array | null = null
  limit: LimitOutcome | null = null
  cacheLookup: RequestContext['cacheLookup'] = null
  upstream: string | null = null
  upstreamStatus: number | null = null
  upstreamMs: number | null = null
  gatewayError: string | null = null
  bytesIn = 0
  bytesOut: number | null = null
  bodyPending = false
  idSent = false
  onBodyEnd: (() => void) | null = null
  body: RequestContext['body']
  readonly proto: 'http' | 'https'
  readonly peerIp: string
  readonly port: number
  readonly upgrade: Upgrade | null
  readonly clientCert: ClientCert | null
  upgraded = false
  trace: RequestTrace | null = null
  decisions: StepRecord[] | null = null
  // Set by the rewrite stage, in the order first set: [canonical name, name as sent, value or
  // null for none]. A few per request: a list, not a Map.
  private sets: [string, string, string | null][] | null = null
  // Canonical names set here that no directive of the route declares (a script's): the
  // client's values under them are dropped for this request (forward.ts).
  replaced: Set<string> | null = null

  constructor(
    readonly req: Request,
    readonly id: string,
    readonly start: number,
    readonly method: string,
    readonly host: string,
    readonly hostHeader: string,
    peer: Peer,
    readonly trusted: boolean,
    readonly ip: string,
    readonly path: string,
    readonly rawQuery: string,
    readonly params: Readonly<Record<string, string>>,
    readonly route: CompiledRoute,
  ) {
    this.upstreamPath = path
    this.proto = peer.tls ? 'https' : 'http'
    this.peerIp = peer.ip
    this.port = peer.port ?? (peer.tls ? 443 : 80)
    this.body = req.body === null ? 'none' : 'unread'
    this.upgrade = peer.upgrade ?? null
    this.clientCert = peer.clientCert ?? null
  }

  get upstreamHeaders(): Headers {
    const h = forwardedHeaders(this.req.headers, this.route, this)
    if (this.sets) for (const [, name, value] of this.sets) if (value !== null) h.set(name, value)
    return h
  }

  upstreamHeaderLines(): string {
    let lines = forwardedHeaderLines(this.req.headers, this.route, this)
    if (this.sets) for (const [, name, value] of this.sets) if (value !== null) lines += `${name}: ${value}\r\n`
    return lines
  }

  get consumer(): string | null {
    return this.identity?.app?.name ?? null
  }

  async readBody(cap: number): Promise<Uint8Array> {
    if (this.bufferedBody) return this.bufferedBody
    const body = this.body === 'unread' ? this.req.body : null
    if (body === null) return (this.bufferedBody = new Uint8Array(0))
    const limit = Math.min(cap, this.bodyLimit ?? Infinity)
    const declared = this.req.headers.get('content-length')
    if (declared !== null && Number(declared) > limit) throw tooLarge(limit, this.bodyLimit)
    const reader = body.getReader()
    let read
    try {
      read = await readUpTo(reader, limit)
    } catch {
      this.body = 'abandoned'
      throw new GatewayError('bad_request', 'the request body could not be read')
    }
    if (!read.ended) {
      void reader.cancel().catch(() => {})
      this.body = 'abandoned'
      throw tooLarge(limit, this.bodyLimit)
    }
    this.body = 'buffered'
    this.bytesIn = read.total
    return (this.bufferedBody = joined(read.parts))
  }

  setUpstreamHeader(name: string, value: string | null): void {
    const canonical = canonicalName(name)
    const sets = (this.sets ??= [])
    let i = 0
    while (i < sets.length && sets[i]![0] !== canonical) i++
    sets[i] = [canonical, name.toLowerCase(), value]
    if (!this.route.protectedHeaders.has(canonical)) (this.replaced ??= new Set()).add(canonical)
  }
}

function tooLarge(limit: number, bodyLimit: number | null): GatewayError {
  const hint = bodyLimit === null || bodyLimit > limit ? ' (bodies the gateway must read whole, to check a Content-Digest, are capped)' : ''
  return new GatewayError('payload_too_large', `the request body is larger than ${limit} bytes${hint}`)
}
