// canary.policy: `proxy split` between orders-stable and orders-canary: 10% at random, 20%
// sticky by the session_id cookie, and partners split by app with an opt-in header. Shares are
// checked over a bounded number of requests with a tolerance of more than 4 standard deviations.
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { loadGateway } from 'portcullis/testing'

const gw = await loadGateway(import.meta.dir, { upstreams: { 'orders-stable': 'record', 'orders-canary': 'record' } })
afterAll(() => gw.close())
const stable = gw.upstream('orders-stable')
const canary = gw.upstream('orders-canary')
beforeEach(() => {
  stable.clear()
  canary.clear()
})

// Which side one request went to.
async function sideOf(send: () => Promise<unknown>): Promise<'stable' | 'canary'> {
  const [s, c] = [stable.requests.length, canary.requests.length]
  await send()
  if (canary.requests.length === c + 1 && stable.requests.length === s) return 'canary'
  if (stable.requests.length === s + 1 && canary.requests.length === c) return 'stable'
  throw new Error(`one request reached ${stable.requests.length - s} stable and ${canary.requests.length - c} canary`)
}

describe('GET /api/v2/orders/{id:int} (90% stable, 10% canary at random)', () => {
  test('about one request in ten goes to the canary', async () => {
    const n = 1000
    for (let i = 0; i < n; i++) {
      const r = await gw.request(`GET /api/v2/orders/${i}`)
      expect(r.status).toBe(200)
    }
    expect(stable.requests.length + canary.requests.length).toBe(n)
    // 100 expected, standard deviation 9.5.
    expect(canary.requests.length).toBeGreaterThan(60)
    expect(canary.requests.length).toBeLessThan(140)
  })

  test('both sides see /orders/{id}', async () => {
    for (let i = 0; i < 200 && (stable.requests.length === 0 || canary.requests.length === 0); i++) await gw.request('GET /api/v2/orders/42')
    expect(stable.last?.path).toBe('/orders/42')
    expect(canary.last?.path).toBe('/orders/42')
  })
})

describe('GET /api/v2/cart (80/20, sticky by the session_id cookie)', () => {
  const cart = (session: string) => gw.request('GET /api/v2/cart', { headers: { Cookie: `theme=dark; session_id=${session}` } })

  test('one session stays on one side', async () => {
    for (const session of ['abc123', 'def456', 's-1', 's-2', 's-3']) {
      const first = await sideOf(() => cart(session))
      for (let i = 0; i < 10; i++) expect(await sideOf(() => cart(session))).toBe(first)
    }
    expect(stable.last?.path ?? canary.last?.path).toBe('/cart')
  })

  test('about one session in five is on the canary', async () => {
    const n = 500
    let onCanary = 0
    for (let i = 0; i < n; i++) if ((await sideOf(() => cart(`session-${i}`))) === 'canary') onCanary++
    // 100 expected, standard deviation 8.9.
    expect(onCanary).toBeGreaterThan(60)
    expect(onCanary).toBeLessThan(140)
  })

  test('without the cookie each request is drawn at random', async () => {
    const sides = new Set<string>()
    for (let i = 0; i < 200 && sides.size < 2; i++) sides.add(await sideOf(() => gw.request('GET /api/v2/cart')))
    expect([...sides].sort()).toEqual(['canary', 'stable'])
  })
})

describe('GET /api/v2/partners/orders (opt-in header, else 95/5 sticky by app)', () => {
  test('X-Canary: always sends a partner to the canary, marked X-Release: canary', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await gw.request('GET /api/v2/partners/orders', { as: 'partner_a', headers: { 'X-Canary': 'always' } })
      expect(r.status, r.explain()).toBe(200)
    }
    expect(stable.requests).toHaveLength(0)
    expect(canary.requests).toHaveLength(5)
    expect(canary.last!.path).toBe('/partners/partner_a/orders')
    expect(canary.last!.headers['x-release']).toBe('canary')
    expect(canary.last!.headers['x-consumer']).toBe('partner_a')
  })

  test('otherwise each app stays on one side', async () => {
    for (const app of ['partner_a', 'partner_b', 'partner_enc']) {
      const send = () => gw.request('GET /api/v2/partners/orders', { as: app })
      const first = await sideOf(send)
      for (let i = 0; i < 10; i++) expect(await sideOf(send)).toBe(first)
    }
    const last = stable.last ?? canary.last
    expect(last!.headers['x-release']).toBeUndefined()
  })

  test('another X-Canary value is no opt-in: the app keeps its side, unmarked', async () => {
    const first = await sideOf(() => gw.request('GET /api/v2/partners/orders', { as: 'partner_b' }))
    const r = await sideOf(() => gw.request('GET /api/v2/partners/orders', { as: 'partner_b', headers: { 'X-Canary': 'yes' } }))
    expect(r).toBe(first)
    expect((r === 'canary' ? canary : stable).last!.headers['x-release']).toBeUndefined()
  })

  test('partners only: no key is 401', async () => {
    const r = await gw.request('GET /api/v2/partners/orders', { headers: { 'X-Canary': 'always' } })
    expect(r.status, r.explain()).toBe(401)
    expect(canary.requests).toHaveLength(0)
  })
})
