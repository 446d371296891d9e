// WebSocket proxying on routes that allow it (`proxy NAME websocket`). The access and rewrite
// stages have run by now, so a refused upgrade never sees 101. The upstream's handshake comes
// first: only when it accepts is the client upgraded, with the subprotocol the upstream chose.
// Messages are relayed whole, text as text and binary as binary, and closes both ways.
import type { ServerWebSocket } from 'bun'
import type { Timeouts } from './client/client.ts'
import type { RequestContext } from './context.ts'
import { GatewayError } from './gateway-error.ts'
import type { Target, UpstreamPool } from './upstream.ts'

// Upgrades the client connection to a WebSocket carrying `link`; false when Bun refuses.
export type Upgrade = (link: WebSocketLink, headers: [string, string][]) => boolean

type Message = string | ArrayBuffer | Uint8Array

export class WebSocketLink {
  client: ServerWebSocket<WebSocketLink> | null = null
  private early: Message[] = [] // upstream messages that came before the client was ready

  constructor(readonly upstream: WebSocket) {
    upstream.onmessage = (e: MessageEvent) => this.toClient(e.data as Message)
    upstream.onclose = (e: CloseEvent) => this.client?.close(sendable(e.code), e.reason)
  }

  private toClient(m: Message): void {
    if (this.client) this.client.send(m)
    else this.early.push(m)
  }

  // The listener's WebSocket handlers call these.
  opened(ws: ServerWebSocket<WebSocketLink>): void {
    this.client = ws
    for (const m of this.early) ws.send(m)
    this.early = []
  }
  fromClient(m: string | Buffer): void {
    if (this.upstream.readyState === WebSocket.OPEN) this.upstream.send(m)
  }
  closed(code: number, reason: string): void {
    if (this.upstream.readyState === WebSocket.OPEN || this.upstream.readyState === WebSocket.CONNECTING) this.upstream.close(sendable(code), reason)
  }
}

// 1005 (no code) and 1006 (abnormal) are observed, never sent.
function sendable(code: number): number {
  return code === 1000 || (code >= 3000 && code <= 4999) || (code >= 1001 && code <= 1014 && code !== 1005 && code !== 1006) ? code : 1000
}

// The client's handshake fields are the WebSocket client's to write; the rest is forwarded.
const HANDSHAKE = [
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-extensions',
  'sec-websocket-protocol',
  'upgrade',
  'connection',
  'host',
]

export const websocketHandlers = {
  open: (ws: ServerWebSocket<WebSocketLink>) => ws.data.opened(ws),
  message: (ws: ServerWebSocket<WebSocketLink>, m: string | Buffer) => ws.data.fromClient(m),
  close: (ws: ServerWebSocket<WebSocketLink>, code: number, reason: string) => ws.data.closed(code, reason),
}

function wsUrl(target: Target, ctx: RequestContext): string {
  const query = ctx.upstreamQuery ?? ctx.rawQuery
  const scheme = target.conn.tls ? 'wss' : 'ws'
  return `${scheme}://${target.conn.hostHeader}${target.basePath}${ctx.upstreamPath}${query ? `?${query}` : ''}`
}

export async function proxyWebSocket(ctx: RequestContext, pool: UpstreamPool, timeouts: Timeouts): Promise<Response> {
  const upgrade = ctx.upgrade
  if (!upgrade) throw new GatewayError('bad_request', 'this route expects a WebSocket upgrade request')
  const target = pool.next()
  ctx.upstream = target.origin
  const headers = ctx.upstreamHeaders // a fresh object
  for (const h of HANDSHAKE) headers.delete(h)
  const protocols = (ctx.req.headers.get('sec-websocket-protocol') ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)
  const started = performance.now()
  const upstream = new WebSocket(wsUrl(target, ctx), { headers, protocols } as unknown as string[])
  upstream.binaryType = 'arraybuffer'
  const opened = await new Promise<boolean | 'timeout'>((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), timeouts.connectMs + timeouts.headersMs)
    upstream.onopen = () => (clearTimeout(timer), resolve(true))
    upstream.onerror = () => (clearTimeout(timer), resolve(false))
    upstream.onclose = () => (clearTimeout(timer), resolve(false))
  })
  ctx.upstreamMs = performance.now() - started
  if (opened !== true) {
    pool.report(target, true)
    upstream.close()
    if (opened === 'timeout') throw new GatewayError('upstream_timeout', `upstream ${pool.name} did not accept the WebSocket within the timeout`)
    throw new GatewayError('bad_gateway', `upstream ${pool.name} refused the WebSocket handshake`)
  }
  pool.report(target, false)
  const link = new WebSocketLink(upstream)
  // The handshake answer is written at once: the request id and the access stage's headers
  // (RateLimit, Deprecation) go with it; response directives cannot reach a 101.
  const answer: [string, string][] = [['x-request-id', ctx.id], ...(ctx.responseHeaders ?? [])]
  if (upstream.protocol) answer.push(['sec-websocket-protocol', upstream.protocol])
  if (!upgrade(link, answer)) {
    upstream.close(1011, 'client upgrade failed')
    throw new GatewayError('bad_request', 'the WebSocket upgrade request is malformed')
  }
  ctx.upgraded = true
  ctx.idSent = true
  ctx.upstreamStatus = 101
  return new Response(null)
}
