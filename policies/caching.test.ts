// caching.policy: `cache response`. A public catalogue kept 30s for everyone, and a partner
// price list kept 2m per app. The cache runs after the access stage: credentials and throttles
// still apply to cached answers.
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { loadGateway, type UpstreamHandler } from 'portcullis/testing'

// An upstream whose answers can be told apart: each carries a serial number.
let served = 0
const numbered: UpstreamHandler = (req) => Response.json({ n: ++served, path: new URL(req.url).pathname })

const gw = await loadGateway(import.meta.dir, { upstreams: { orders: numbered, users: numbered } })
afterAll(() => gw.close())
const orders = gw.upstream('orders')
const users = gw.upstream('users')
beforeEach(() => {
  orders.clear()
  users.clear()
  // Every test starts well after the last one's entries expired.
  gw.clock.advance('1h')
})

describe('GET,HEAD /api/v1/catalog/{id} (cache response 30s)', () => {
  test('the second request within 30s is answered from the cache, with an Age', async () => {
    const first = await gw.request('GET /api/v1/catalog/42')
    expect(first.status, first.explain()).toBe(200)
    expect(first.headers.get('cache-status')).toContain('stored')
    const body = await first.json()
    expect(body.path).toBe('/catalog/42')
    gw.clock.advance('10s')
    const second = await gw.request('GET /api/v1/catalog/42')
    expect(second.status, second.explain()).toBe(200)
    expect(second.headers.get('cache-status')).toBe('portcullis; hit; ttl=20')
    expect(second.headers.get('age')).toBe('10')
    expect(await second.json()).toEqual(body)
    expect(orders.requests).toHaveLength(1)
    // Each answer has its own request id.
    expect(second.headers.get('x-request-id')).not.toBe(first.headers.get('x-request-id'))
  })

  test('after 30s the upstream is asked again', async () => {
    await gw.request('GET /api/v1/catalog/7')
    gw.clock.advance('29s')
    expect((await gw.request('GET /api/v1/catalog/7')).headers.get('cache-status')).toContain('hit')
    gw.clock.advance('1s')
    const fresh = await gw.request('GET /api/v1/catalog/7')
    expect(fresh.headers.get('cache-status')).not.toContain('hit')
    expect(orders.requests).toHaveLength(2)
  })

  test('one entry per path and query', async () => {
    await gw.request('GET /api/v1/catalog/1')
    await gw.request('GET /api/v1/catalog/2')
    await gw.request('GET /api/v1/catalog/1?lang=fr')
    await gw.request('GET /api/v1/catalog/1')
    expect(orders.requests.map((r) => r.path)).toEqual(['/catalog/1', '/catalog/2', '/catalog/1?lang=fr'])
  })

  test('the same for everyone: another client gets the stored answer', async () => {
    const a = await (await gw.request('GET /api/v1/catalog/9', { ip: '203.0.113.1' })).json()
    const b = await (await gw.request('GET /api/v1/catalog/9', { ip: '203.0.113.2' })).json()
    expect(b).toEqual(a)
    expect(orders.requests).toHaveLength(1)
  })

  test('HEAD is answered from a GET entry', async () => {
    await gw.request('GET /api/v1/catalog/5')
    const head = await gw.request('HEAD /api/v1/catalog/5')
    expect(head.status, head.explain()).toBe(200)
    expect(head.headers.get('cache-status')).toContain('hit')
    expect(orders.requests).toHaveLength(1)
  })

  test('an upstream error is not stored', async () => {
    orders.respond(() => new Response('oops', { status: 500 }))
    expect((await gw.request('GET /api/v1/catalog/13')).status).toBe(500)
    orders.respond(numbered)
    const r = await gw.request('GET /api/v1/catalog/13')
    expect(r.status, r.explain()).toBe(200)
    expect(orders.requests).toHaveLength(2)
  })

  test('cached answers count against the 300/min throttle', async () => {
    const ip = '198.18.0.1'
    for (let i = 0; i < 300; i++) expect((await gw.request('GET /api/v1/catalog/3', { ip })).status).toBe(200)
    expect(orders.requests).toHaveLength(1)
    const over = await gw.request('GET /api/v1/catalog/3', { ip })
    expect(over.status, over.explain()).toBe(429)
    expect(over.headers.get('gateway-error')).toBe('rate_limited')
  })
})

describe('GET /api/v1/partners/price-list (cache response 2m per app)', () => {
  test('each partner gets its own answer, kept 2 minutes', async () => {
    const a1 = await gw.request('GET /api/v1/partners/price-list', { as: 'partner_a' })
    expect(a1.status, a1.explain()).toBe(200)
    const a = await a1.json()
    expect(a.path).toBe('/price-lists/partner_a')
    const b = await (await gw.request('GET /api/v1/partners/price-list', { as: 'partner_b' })).json()
    expect(b.path).toBe('/price-lists/partner_b')
    gw.clock.advance('119s')
    expect(await (await gw.request('GET /api/v1/partners/price-list', { as: 'partner_a' })).json()).toEqual(a)
    expect(await (await gw.request('GET /api/v1/partners/price-list', { as: 'partner_b' })).json()).toEqual(b)
    expect(users.requests).toHaveLength(2)
    gw.clock.advance('1s')
    const again = await (await gw.request('GET /api/v1/partners/price-list', { as: 'partner_a' })).json()
    expect(again.n).not.toBe(a.n)
    expect(users.requests).toHaveLength(3)
  })

  test('without a key it is still a 401, even with an answer in the cache', async () => {
    await gw.request('GET /api/v1/partners/price-list', { as: 'partner_a' })
    const r = await gw.request('GET /api/v1/partners/price-list')
    expect(r.status, r.explain()).toBe(401)
    expect(r.headers.get('gateway-error')).toBe('unauthenticated')
  })

  test("a cached answer counts against the partner's tier (partner_b: 5/min)", async () => {
    for (let i = 0; i < 5; i++) expect((await gw.request('GET /api/v1/partners/price-list', { as: 'partner_b' })).status).toBe(200)
    expect(users.requests).toHaveLength(1)
    const over = await gw.request('GET /api/v1/partners/price-list', { as: 'partner_b' })
    expect(over.status, over.explain()).toBe(429)
  })
})
