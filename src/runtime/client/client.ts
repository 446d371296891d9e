// The upstream client's small interface: one exchange = one request written to an origin and
// its answer read back. The proxy, retries and health checks see only this.
export interface Origin {
  readonly key: string // scheme://host:port, the pool's key
  readonly hostname: string
  readonly port: number
  readonly tls: boolean
  readonly hostHeader: string // what the upstream gets as Host
}

export interface Timeouts {
  connectMs: number // TCP (and TLS) connection
  headersMs: number // from the request's last byte to the answer's head
  idleMs: number // the longest silence while sending the request or receiving the body
}

export interface ExchangeOptions {
  origin: Origin
  method: string
  target: string // path and query, already normalised
  headerLines: string // `name: value\r\n` lines: no Host, no framing, no hop-by-hop fields
  // A stream is sent as it arrives (Content-Length when `length` is known, else chunked);
  // bytes can be sent again, so only they make a request safe to retry on a stale connection.
  body: ReadableStream<Uint8Array> | Uint8Array | null
  length: number | null
  bodyLimit: number // request body bytes allowed; past it the exchange fails with `too_large`
  // May be sent again on a new connection when a pooled one turns out closed (RFC 9110 9.2.2).
  replayable: boolean
  timeouts: Timeouts
  // The answer's X-Request-Id, set as it is made (over an upstream's own).
  requestId?: string
  // Called once, for an exchange that produced an answer, when its body has been delivered
  // or cut; with the request body bytes read by then.
  onBodyEnd?(bytesOut: number, failure: FailureKind | null, bytesIn: number): void
}

export interface ExchangeResult {
  response: Response
  // Request body bytes read from the client so far (all of them once the body is sent).
  bytesIn(): number
  // True when the upstream answered before the client's body was read to its end.
  bodyAbandoned(): boolean
  // False while the answer's body is still arriving (onBodyEnd follows).
  ended(): boolean
}

// `cancelled`: the client stopped reading the answer.
export type FailureKind = 'connect' | 'connect_timeout' | 'timeout' | 'reset' | 'protocol' | 'too_large' | 'client_body' | 'cancelled'

export class UpstreamFailure extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
    // Nothing of an answer arrived and the upstream may not have acted: safe to try elsewhere.
    readonly beforeAnswer: boolean,
  ) {
    super(message)
  }
}

export function originOf(url: URL): Origin {
  const tls = url.protocol === 'https:'
  const port = url.port ? Number(url.port) : tls ? 443 : 80
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  return { key: `${url.protocol}//${url.host}`, hostname, port, tls, hostHeader: url.host }
}
