// orders.policy: API mapping with typed parameters, a tighter body limit, query rewrites, a
// blocked and a retired endpoint, and a per-route timeout.
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { loadGateway } from 'portcullis/testing'

const gw = await loadGateway(import.meta.dir, { upstreams: { orders: 'record' } })
afterAll(() => gw.close())
const orders = gw.upstream('orders')
beforeEach(() => {
  orders.clear()
  orders.respond('record')
})

describe('GET,HEAD /api/v1/orders/{id:int}', () => {
  test('maps to /orders/{id} with the id and a correlation id as headers; the answer is no-store', async () => {
    const r = await gw.request('GET /api/v1/orders/42')
    expect(r.status, r.explain()).toBe(200)
    expect(r.trace.route?.location).toEndWith('policies/orders.policy:6:16')
    const seen = orders.last!
    expect(seen.path).toBe('/orders/42')
    expect(seen.headers['x-order-id']).toBe('42')
    // "order-{param.id}-{request.id}": the request id is the one the upstream gets as X-Request-Id.
    expect(seen.headers['x-correlation-id']).toBe(`order-42-${seen.headers['x-request-id']}`)
    expect(r.headers.get('cache-control')).toBe('no-store')
  })

  test('HEAD is allowed too', async () => {
    const r = await gw.request('HEAD /api/v1/orders/7')
    expect(r.status, r.explain()).toBe(200)
    expect(orders.last).toMatchObject({ method: 'HEAD', path: '/orders/7' })
  })

  test('an id that is not an int matches no route', async () => {
    const r = await gw.request('GET /api/v1/orders/abc')
    expect(r.status, r.explain()).toBe(404)
    expect(r.headers.get('gateway-error')).toBe('no_route')
    expect(orders.requests).toHaveLength(0)
  })

  test('another method is not allowed', async () => {
    const r = await gw.request('DELETE /api/v1/orders/42')
    expect(r.status, r.explain()).toBe(405)
    expect(r.headers.get('gateway-error')).toBe('method_not_allowed')
    expect(r.trace.reason).toContain('allowed: GET, HEAD')
  })
})

describe('GET /api/v1/orders/by-ref/{ref:uuid}', () => {
  test('the reference becomes the query parameter ref of /orders/lookup', async () => {
    const ref = '3f2c9a1e-7b4d-4c2a-9e8f-1a2b3c4d5e6f'
    const r = await gw.request(`GET /api/v1/orders/by-ref/${ref}`)
    expect(r.status, r.explain()).toBe(200)
    expect(orders.last!.path).toBe(`/orders/lookup?ref=${ref}`)
  })

  test('a reference that is not a UUID matches no route', async () => {
    const r = await gw.request('GET /api/v1/orders/by-ref/not-a-uuid')
    expect(r.status, r.explain()).toBe(404)
    expect(r.headers.get('gateway-error')).toBe('no_route')
  })
})

describe('POST /api/v1/orders', () => {
  test('forwards the body to /orders with source=gateway, without debug, and the client address', async () => {
    const r = await gw.request('POST /api/v1/orders?debug=1&page=2', { body: { sku: 'SKU-1', qty: 2 }, ip: '203.0.113.9' })
    expect(r.status, r.explain()).toBe(200)
    const seen = orders.last!
    expect(seen.method).toBe('POST')
    const url = new URL(seen.path, 'http://upstream')
    expect(url.pathname).toBe('/orders')
    expect(url.searchParams.get('source')).toBe('gateway')
    expect(url.searchParams.get('page')).toBe('2')
    expect(url.searchParams.has('debug')).toBe(false)
    expect(seen.headers['x-client-ip']).toBe('203.0.113.9')
    expect(JSON.parse(seen.body)).toEqual({ sku: 'SKU-1', qty: 2 })
  })

  test('a client cannot choose the source: set query replaces it', async () => {
    await gw.request('POST /api/v1/orders?source=evil', { body: {} })
    expect(new URL(orders.last!.path, 'http://upstream').searchParams.getAll('source')).toEqual(['gateway'])
  })

  test('64kb is the most it takes (413 payload_too_large above, never forwarded)', async () => {
    const ok = await gw.request('POST /api/v1/orders', { body: 'x'.repeat(64 * 1024) })
    expect(ok.status, ok.explain()).toBe(200)
    expect(orders.last!.body).toHaveLength(64 * 1024)
    orders.clear()
    const big = await gw.request('POST /api/v1/orders', { body: 'x'.repeat(64 * 1024 + 1) })
    expect(big.status, big.explain()).toBe(413)
    expect(big.headers.get('gateway-error')).toBe('payload_too_large')
    expect(orders.requests).toHaveLength(0)
  })
})

describe('GET /api/v1/prices/{currency:/[A-Z]{3}/}', () => {
  test('three upper-case letters map to /prices/{currency}', async () => {
    const r = await gw.request('GET /api/v1/prices/EUR')
    expect(r.status, r.explain()).toBe(200)
    expect(orders.last!.path).toBe('/prices/EUR')
  })

  test.each(['eur', 'EURO', 'EU1'])('%s matches no route', async (currency) => {
    const r = await gw.request(`GET /api/v1/prices/${currency}`)
    expect(r.status, r.explain()).toBe(404)
    expect(r.headers.get('gateway-error')).toBe('no_route')
    expect(orders.requests).toHaveLength(0)
  })
})

describe('switched-off endpoints', () => {
  test.each(['GET', 'POST', 'DELETE'])('%s /api/v1/orders/export answers 503 blocked before the upstream', async (method) => {
    const r = await gw.request(`${method} /api/v1/orders/export`)
    expect(r.status, r.explain()).toBe(503)
    expect(r.headers.get('gateway-error')).toBe('blocked')
    expect(r.trace.steps.find((s) => s.outcome === 'refused')?.directive).toBe('status')
    expect(orders.requests).toHaveLength(0)
  })

  test.each(['GET /api/v0/orders/42', 'DELETE /api/v0/orders/42/items', 'POST /api/v0/orders/x/y/z'])('%s answers 410 retired', async (spec) => {
    const r = await gw.request(spec)
    expect(r.status, r.explain()).toBe(410)
    expect(r.headers.get('gateway-error')).toBe('retired')
    expect(orders.requests).toHaveLength(0)
  })
})

describe('GET /api/v1/slow (proxy orders timeout 1s)', () => {
  test('an answer within the second passes, to /orders/slow with the query', async () => {
    orders.respond(async () => {
      await Bun.sleep(100)
      return Response.json({ slept: 100 })
    })
    const r = await gw.request('GET /api/v1/slow?ms=100')
    expect(r.status, r.explain()).toBe(200)
    expect(await r.json()).toEqual({ slept: 100 })
    expect(orders.last!.path).toBe('/orders/slow?ms=100')
  })

  test('past 1s the gateway answers 504 upstream_timeout (real time: timeouts are not on the kit clock)', async () => {
    const { promise: released, resolve: release } = Promise.withResolvers<void>()
    orders.respond(async () => {
      await released
      return Response.json({ late: true })
    })
    const started = performance.now()
    const r = await gw.request('GET /api/v1/slow?ms=2000')
    const took = performance.now() - started
    release()
    expect(r.status, r.explain()).toBe(504)
    expect(r.headers.get('gateway-error')).toBe('upstream_timeout')
    expect(took).toBeGreaterThanOrEqual(950)
    expect(took).toBeLessThan(3000)
  })
})
