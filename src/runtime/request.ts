// The request context as a class: one shape for every request. The upstream's headers are
// written once as text when the request is sent; directives only record their edits.
import type { CompiledRoute, RequestContext } from './context.ts'
import type { Upgrade } from './websocket.ts'
import { forwardedHeaderLines, forwardedHeaders, type ForwardFacts } from './forward.ts'
import { canonicalName } from './headers.ts'

export interface Peer {
  ip: string
  tls: boolean
  port?: number // the listener's port (X-Forwarded-Port)
  // Set by the listener for a request that asks to upgrade (h2c upgrades are ignored).
  upgrade?: Upgrade | null
}

export class GatewayRequest implements RequestContext, ForwardFacts {
  upstreamPath: string
  upstreamQuery: string | null = null
  responseHeaders: [string, string][] | null = null
  bodyLimit: number | null = null
  app: string | null = null
  user: string | null = null
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
  upgraded = false
  // Set by the rewrite stage, by canonical name: [name as written, value or null for none].
  private sets: Map<string, [string, string | null]> | null = null

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
  }

  get upstreamHeaders(): Headers {
    const h = forwardedHeaders(this.req.headers, this.route, this)
    if (this.sets) for (const [name, value] of this.sets.values()) if (value !== null) h.set(name, value)
    return h
  }

  upstreamHeaderLines(): string {
    let lines = forwardedHeaderLines(this.req.headers, this.route, this)
    if (this.sets) for (const [name, value] of this.sets.values()) if (value !== null) lines += `${name}: ${value}\r\n`
    return lines
  }

  setUpstreamHeader(name: string, value: string | null): void {
    ;(this.sets ??= new Map()).set(canonicalName(name), [name.toLowerCase(), value])
  }
}
