// WebSocket upgrades: proxied on routes that allow them, after the access stage; refused
// elsewhere; h2c upgrades ignored (never tunnelled).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { RawConnection, type RawResponse } from '../helpers/http.ts'

let gw: RunningGateway
let plain: Upstream
let dir: string
let wsUp: ReturnType<typeof Bun.serve<{ headers: Record<string, string>; path: string }>>

beforeAll(async () => {
  plain = startUpstream()
  // Echoes every message (same type), and first reports what its handshake carried.
  wsUp = Bun.serve<{ headers: Record<string, string>; path: string }>({
    hostname: '127.0.0.1',
    port: 0,
    fetch(req, server) {
      const offered = req.headers.get('sec-websocket-protocol')
      const headers: Record<string, string> = offered?.includes('v2') ? { 'sec-websocket-protocol': 'v2' } : {}
      const url = new URL(req.url)
      if (server.upgrade(req, { data: { headers: Object.fromEntries(req.headers), path: url.pathname + url.search }, headers })) return undefined
      return new Response('not a websocket', { status: 400 })
    },
    websocket: {
      open(ws) {
        ws.send(JSON.stringify({ hello: ws.data.path, headers: ws.data.headers }))
      },
      message(ws, m) {
        if (m === 'close please') return ws.close(4001, 'as asked')
        ws.send(m)
      },
    },
  })
  dir = policyDir({
    'main.policy': `
upstream ws { target http://127.0.0.1:${wsUp.port} }
upstream plain { target ${plain.url} }
match GET /chat/{room} { rewrite path /rooms/{room}; proxy ws websocket }
match GET /denied { deny ip 127.0.0.0/8; proxy ws websocket }
match GET /no-ws { proxy ws }
match GET /plain { proxy plain }
`,
  })
  gw = await startGateway(dir)
})

afterAll(async () => {
  await gw?.stop()
  plain?.stop()
  wsUp?.stop(true)
  removeDir(dir)
})

function connect(
  path: string,
  protocols?: string[],
): Promise<{ ws: WebSocket; messages: unknown[]; next(): Promise<unknown>; closed: Promise<CloseEvent> }> {
  const ws = new WebSocket(`${gw.url.replace('http', 'ws')}${path}`, protocols)
  ws.binaryType = 'arraybuffer'
  const messages: unknown[] = []
  const waiting: ((m: unknown) => void)[] = []
  ws.onmessage = (e) => {
    const w = waiting.shift()
    if (w) w(e.data)
    else messages.push(e.data)
  }
  const closed = new Promise<CloseEvent>((resolve) => (ws.onclose = resolve))
  const next = () => (messages.length ? Promise.resolve(messages.shift()) : new Promise((resolve) => waiting.push(resolve)))
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve({ ws, messages, next, closed })
    ws.onerror = () => reject(new Error(`websocket to ${path} failed`))
  })
}

describe('websocket routes', () => {
  test('text and binary messages are relayed whole, both ways, after the rewrite stage', async () => {
    const c = await connect('/chat/lobby?x=1')
    const hello = JSON.parse((await c.next()) as string)
    expect(hello.hello).toBe('/rooms/lobby?x=1')
    // The upstream's handshake carries the forwarding set, not the client's spoofed identity.
    expect(hello.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(hello.headers['x-request-id']).toBeDefined()
    c.ws.send('hi there')
    expect(await c.next()).toBe('hi there')
    c.ws.send(new Uint8Array([0, 1, 2, 255]))
    const bin = await c.next()
    expect(bin).toBeInstanceOf(ArrayBuffer)
    expect([...new Uint8Array(bin as ArrayBuffer)]).toEqual([0, 1, 2, 255])
    c.ws.close(1000, 'bye')
    expect((await c.closed).code).toBe(1000)
  })

  test('the subprotocol the upstream chose is the one the client gets', async () => {
    const c = await connect('/chat/proto', ['v1', 'v2'])
    expect(c.ws.protocol).toBe('v2')
    c.ws.close()
  })

  test("the upstream's close code and reason reach the client", async () => {
    const c = await connect('/chat/bye')
    await c.next()
    c.ws.send('close please')
    const closed = await c.closed
    expect(closed.code).toBe(4001)
    expect(closed.reason).toBe('as asked')
  })

  test('the access log has the upgrade as 101', async () => {
    const c = await connect('/chat/logged')
    await c.next()
    c.ws.close()
    const line = await gw.waitFor('stdout', /"path":"\/chat\/logged"/)
    expect(JSON.parse(line).status).toBe(101)
  })
})

// One request on its own connection; the answer as soon as it is whole.
async function once(path: string, lines: string[]): Promise<RawResponse> {
  const c = await RawConnection.open(gw.url)
  c.write([`GET ${path} HTTP/1.1`, 'Host: gw.test', ...lines, '', ''].join('\r\n'))
  const res = await c.response()
  c.close()
  return res
}

const upgradeHeaders = ['Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13']

describe('refused upgrades', () => {
  test('the access stage runs first: a denied client never sees 101', async () => {
    const res = await once('/denied', upgradeHeaders)
    expect(res.status).toBe(403)
    expect(res.header('gateway-error')).toBe('forbidden')
  })

  test('a route without `websocket` refuses the upgrade with a clear error', async () => {
    const res = await once('/no-ws', upgradeHeaders)
    expect(res.status).toBe(400)
    expect(JSON.parse(res.body).detail).toContain('upgrade')
  })

  test('an h2c upgrade is ignored: a plain HTTP/1.1 answer, no Upgrade header upstream', async () => {
    const res = await once('/plain', ['Upgrade: h2c', 'Connection: Upgrade, HTTP2-Settings', 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA'])
    expect(res.status).toBe(200)
    const echo = JSON.parse(res.body)
    expect(echo.headers.upgrade).toBeUndefined()
    expect(echo.headers['http2-settings']).toBeUndefined()
  })
})
