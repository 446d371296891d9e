// live.policy: an event stream from users and a WebSocket route to orders. The kit answers in
// process, without a listener, so WebSocket upgrades themselves are not tested here (the route's
// plain GET and its rewrites are); the stream's timeouts are real time (3s, 5s) and not staged.
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { loadGateway } from 'portcullis/testing'

const gw = await loadGateway(import.meta.dir, { upstreams: { users: 'record', orders: 'record' } })
afterAll(() => gw.close())
const users = gw.upstream('users')
const orders = gw.upstream('orders')
beforeEach(() => {
  users.clear()
  orders.clear()
  orders.respond('record')
})

describe('GET /api/v1/users/{name}/events (server-sent events)', () => {
  test('events pass through as the upstream sends them, not when the stream ends', async () => {
    const { promise: more, resolve: sendMore } = Promise.withResolvers<void>()
    users.respond(() => {
      const stream = new ReadableStream<Uint8Array>({
        async start(controller) {
          const enc = new TextEncoder()
          controller.enqueue(enc.encode('id: 1\ndata: {"n":1}\n\n'))
          // The second event waits until the client has seen the first.
          await more
          controller.enqueue(enc.encode('id: 2\ndata: {"n":2}\n\n'))
          controller.close()
        },
      })
      return new Response(stream, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } })
    })
    const r = await gw.request('GET /api/v1/users/ada/events?count=2&every=1000', { headers: { Accept: 'text/event-stream' } })
    expect(r.status, r.explain()).toBe(200)
    expect(r.headers.get('content-type')).toBe('text/event-stream')
    expect(r.headers.get('x-accel-buffering')).toBe('no')
    expect(users.last!.path).toBe('/users/ada/events?count=2&every=1000')

    const reader = r.response.body!.pipeThrough(new TextDecoderStream()).getReader()
    let text = ''
    for (let i = 0; i < 10 && !text.includes('\n\n'); i++) text += (await reader.read()).value ?? ''
    expect(text).toBe('id: 1\ndata: {"n":1}\n\n')
    sendMore()
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      text += value
    }
    expect(text).toBe('id: 1\ndata: {"n":1}\n\nid: 2\ndata: {"n":2}\n\n')
  })
})

describe('GET /api/v1/orders/{id:int}/live (proxy orders timeout 2s websocket)', () => {
  test('without an upgrade it proxies a plain GET to /orders/{id}/ws with X-Order-Id', async () => {
    orders.respond(() => new Response('Upgrade Required', { status: 426, headers: { upgrade: 'websocket' } }))
    const r = await gw.request('GET /api/v1/orders/42/live')
    expect(r.status, r.explain()).toBe(426)
    expect(orders.last!.path).toBe('/orders/42/ws')
    expect(orders.last!.headers['x-order-id']).toBe('42')
    expect(orders.last!.headers['x-gateway']).toBe('portcullis')
  })

  test("the defaults' deny ip applies to it", async () => {
    const r = await gw.request('GET /api/v1/orders/42/live', { ip: '192.0.2.1' })
    expect(r.status, r.explain()).toBe(403)
    expect(orders.requests).toHaveLength(0)
  })

  test('an id that is not an int matches no route', async () => {
    expect((await gw.request('GET /api/v1/orders/abc/live')).status).toBe(404)
  })
})
