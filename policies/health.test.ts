// health.policy: answers from the gateway itself (`respond`), and a probe of the orders pool
// with a per-route timeout.
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { loadGateway } from 'portcullis/testing'

const gw = await loadGateway(import.meta.dir, { upstreams: { orders: () => Response.json({ ok: true }) } })
afterAll(() => gw.close())
const orders = gw.upstream('orders')
beforeEach(() => {
  orders.clear()
  orders.respond(() => Response.json({ ok: true }))
})

describe('GET,HEAD /healthz', () => {
  test('the gateway answers {"ok":true} as JSON, no upstream involved', async () => {
    const r = await gw.request('GET /healthz')
    expect(r.status, r.explain()).toBe(200)
    expect(r.headers.get('content-type')).toStartWith('application/json')
    expect(await r.json()).toEqual({ ok: true })
    expect(r.trace.steps.find((s) => s.outcome === 'answered')?.at).toEndWith('policies/health.policy:7')
    expect(orders.requests).toHaveLength(0)
  })

  test('HEAD answers 200 without a body', async () => {
    const r = await gw.request('HEAD /healthz')
    expect(r.status, r.explain()).toBe(200)
    expect(await r.text()).toBe('')
  })
})

describe('GET /ping', () => {
  test('answers pong and the request id, as text', async () => {
    const r = await gw.request('GET /ping')
    expect(r.status, r.explain()).toBe(200)
    expect(r.headers.get('content-type')).toStartWith('text/plain')
    const id = r.headers.get('x-request-id')
    expect(id).toBeTruthy()
    expect(await r.text()).toBe(`pong ${id}\n`)
  })

  test('each request has its own id', async () => {
    const a = await (await gw.request('GET /ping')).text()
    const b = await (await gw.request('GET /ping')).text()
    expect(a).not.toBe(b)
  })
})

describe('GET /healthz/orders', () => {
  test("asks the orders pool's own /healthz and passes its answer on", async () => {
    const r = await gw.request('GET /healthz/orders')
    expect(r.status, r.explain()).toBe(200)
    expect(await r.json()).toEqual({ ok: true })
    expect(orders.last!.path).toBe('/healthz')
  })

  test('an orders instance that takes more than 1s is a 504 upstream_timeout (real time)', async () => {
    const { promise: released, resolve: release } = Promise.withResolvers<void>()
    orders.respond(async () => {
      await released
      return Response.json({ ok: true })
    })
    const started = performance.now()
    const r = await gw.request('GET /healthz/orders')
    const took = performance.now() - started
    release()
    expect(r.status, r.explain()).toBe(504)
    expect(r.headers.get('gateway-error')).toBe('upstream_timeout')
    // The route's 1s, not the pool's 5s.
    expect(took).toBeLessThan(3000)
  })
})
