// Every answer of the gateway listener carries X-Request-Id, equal to the access log's
// request_id: upstream answers (whole or streamed), the gateway's own (respond, errors from
// every stage, early answers to unread bodies) and WebSocket handshakes.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { until } from '../helpers/poll.ts'
import { raw, REQUEST_ID, type RawResponse } from '../helpers/http.ts'

let up: Upstream
let ws: ReturnType<typeof Bun.serve>
let gw: RunningGateway
let dir: string

beforeAll(async () => {
  up = startUpstream((req) => {
    const path = new URL(req.url).pathname
    if (path.endsWith('/stream'))
      return new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(new TextEncoder().encode('part one, '))
            setTimeout(() => {
              c.enqueue(new TextEncoder().encode('part two'))
              c.close()
            }, 20)
          },
        }),
      )
    if (path.endsWith('/empty')) return new Response(null, { status: 204 })
    return new Response('whole')
  })
  ws = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch: (req, server) => (server.upgrade(req, { data: undefined }) ? undefined : new Response('not a websocket', { status: 400 })),
    websocket: { message: (sock, m) => void sock.send(m) },
  })
  dir = policyDir({
    'ids.policy': `
upstream api { target ${up.url} }
match GET,HEAD /whole { proxy api }
match GET /stream { proxy api }
match GET /empty { proxy api }
match GET /mock { respond 200 json "{\\"ok\\":true}" }
match GET /closed { allow ip 10.0.0.0/8; proxy api }
match POST /small { limit body 8b; proxy api }
match GET /down { proxy http://127.0.0.1:9 }
match GET /ws { proxy http://127.0.0.1:${ws.port} websocket }
`,
  })
  gw = await startGateway(dir)
})
afterAll(async () => {
  await gw?.stop()
  up?.stop()
  ws?.stop(true)
  removeDir(dir)
})

async function logged(id: string): Promise<Record<string, unknown>> {
  return until(
    () => gw.accessLog().find((e) => e.request_id === id),
    (e) => e !== undefined,
    2_000,
    `an access log line for ${id}`,
  ) as Promise<Record<string, unknown>>
}

const cases: [string, string, string, string[], string, number][] = [
  ['an upstream answer read whole', 'GET', '/whole', [], '', 200],
  ['an upstream answer streamed', 'GET', '/stream', [], '', 200],
  ['an upstream 204', 'GET', '/empty', [], '', 204],
  ['a HEAD answer', 'HEAD', '/whole', [], '', 200],
  ['respond', 'GET', '/mock', [], '', 200],
  ['no route (404)', 'GET', '/nowhere', [], '', 404],
  ['a method the route lacks (405)', 'DELETE', '/whole', [], '', 405],
  ['an access refusal (403)', 'GET', '/closed', [], '', 403],
  ['a body over its limit, unread (413)', 'POST', '/small', [], 'x'.repeat(64), 413],
  ['an unreachable upstream (502)', 'GET', '/down', [], '', 502],
  ['an upgrade on a route without websocket (400)', 'GET', '/whole', ['Upgrade: websocket', 'Connection: Upgrade, close'], '', 400],
]

describe('X-Request-Id', () => {
  test.each(cases)('on %s', async (_what, method, target, headers, body, status) => {
    const res: RawResponse = await raw(gw.url, method, target, headers, body)
    expect(res.status).toBe(status)
    const id = res.header('x-request-id')!
    expect(id).toMatch(REQUEST_ID)
    expect(res.headers.get('x-request-id')).toHaveLength(1)
    expect((await logged(id)).status).toBe(status)
  })

  test('on a WebSocket handshake (101)', async () => {
    const key = Buffer.from('0123456789abcdef').toString('base64')
    let head = ''
    const { promise: gotHead, resolve } = Promise.withResolvers<void>()
    const { port } = new URL(gw.url)
    const sock = await Bun.connect({
      hostname: '127.0.0.1',
      port: Number(port),
      socket: {
        data(_s, d) {
          head += d.toString('latin1')
          if (head.includes('\r\n\r\n')) resolve()
        },
      },
    })
    try {
      sock.write(
        `GET /ws HTTP/1.1\r\nHost: ${new URL(gw.url).host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      )
      await gotHead
      expect(head).toStartWith('HTTP/1.1 101 ')
      const id = /\r\nx-request-id: *([^\r]+)/i.exec(head)?.[1]
      expect(id).toMatch(REQUEST_ID)
      expect((await logged(id!)).status).toBe(101)
    } finally {
      sock.end()
    }
  })
})
