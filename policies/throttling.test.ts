// throttling.policy: partner tiers (partner_a gold 20/min with bursts of 5 in 15s, partner_b
// silver 5/min) with a daily quota, and anonymous search limited per address and per tenant.
// Every test moves the kit's clock; none waits.
import { afterAll, describe, expect, test } from 'bun:test'
import { loadGateway, type Gateway, type KitResponse } from 'portcullis/testing'

const open: Gateway[] = []
afterAll(async () => {
  for (const g of open) await g.close()
})
// A fresh gateway (its own counters) for each test, starting at a known time.
async function kit(now = '2027-03-01T09:00:00Z'): Promise<Gateway> {
  const gw = await loadGateway(import.meta.dir, { upstreams: { users: 'record' }, now })
  open.push(gw)
  return gw
}

async function statuses(n: number, send: () => Promise<KitResponse>): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push((await send()).status)
  return out
}
const ok = (n: number) => Array<number>(n).fill(200)

describe('GET /api/v1/partners/quotes (throttle tier per app, quota 1000/day per app)', () => {
  test('partner_b (silver): 5 a minute, then 429 rate_limited until the minute has passed', async () => {
    const gw = await kit()
    const quotes = () => gw.request('GET /api/v1/partners/quotes', { as: 'partner_b' })
    expect(await statuses(5, quotes)).toEqual(ok(5))
    const refused = await quotes()
    expect(refused.status, refused.explain()).toBe(429)
    expect(refused.headers.get('gateway-error')).toBe('rate_limited')
    expect(refused.headers.get('retry-after')).toBe('60')
    expect(refused.trace.steps.find((s) => s.outcome === 'refused')?.detail).toContain('silver limit of 5')
    expect(gw.upstream('users').requests).toHaveLength(5)
    gw.clock.advance('59s')
    expect((await quotes()).status).toBe(429)
    gw.clock.advance('1s')
    expect(await statuses(5, quotes)).toEqual(ok(5))
    expect((await quotes()).status).toBe(429)
  })

  test('each answer says how much is left: RateLimit headers for the tier and the quota', async () => {
    const gw = await kit()
    const first = await gw.request('GET /api/v1/partners/quotes', { as: 'partner_b' })
    expect(first.status, first.explain()).toBe(200)
    expect(first.headers.get('ratelimit-policy')).toBe('"silver";q=5;w=60, "quota";q=1000;w=86400')
    expect(first.headers.get('ratelimit')).toBe('"silver";r=4;t=60')
    expect(gw.upstream('users').last!.path).toBe('/quotes')
  })

  test('partner_a (gold): bursts of at most 5 in 15s, 20 a minute', async () => {
    const gw = await kit()
    const quotes = () => gw.request('GET /api/v1/partners/quotes', { as: 'partner_a' })
    for (let burst = 0; burst < 4; burst++) {
      expect(await statuses(5, quotes)).toEqual(ok(5))
      const over = await quotes()
      expect(over.status, over.explain()).toBe(429)
      expect(over.headers.get('gateway-error')).toBe('rate_limited')
      gw.clock.advance('15s')
    }
    // 20 within the minute: nothing more until the first burst is a minute old.
    expect(gw.upstream('users').requests).toHaveLength(20)
  })

  test('the apps are counted apart', async () => {
    const gw = await kit()
    expect(await statuses(5, () => gw.request('GET /api/v1/partners/quotes', { as: 'partner_b' }))).toEqual(ok(5))
    expect((await gw.request('GET /api/v1/partners/quotes', { as: 'partner_b' })).status).toBe(429)
    expect((await gw.request('GET /api/v1/partners/quotes', { as: 'partner_a' })).status).toBe(200)
  })

  test('without a key: 401, and nothing is counted', async () => {
    const gw = await kit()
    expect((await gw.request('GET /api/v1/partners/quotes')).status).toBe(401)
    expect(await statuses(5, () => gw.request('GET /api/v1/partners/quotes', { as: 'partner_b' }))).toEqual(ok(5))
  })

  test('at most 1000 a day whatever the pace: 429 quota_exceeded until midnight UTC', async () => {
    const gw = await kit('2027-03-01T00:00:00Z')
    const quotes = () => gw.request('GET /api/v1/partners/quotes', { as: 'partner_a' })
    // At gold's pace: 5 every 15s, 1000 in 50 minutes of the clock.
    let admitted = 0
    for (let i = 0; i < 200; i++) {
      for (let j = 0; j < 5; j++) if ((await quotes()).status === 200) admitted++
      gw.clock.advance('15s')
    }
    expect(admitted).toBe(1000)
    const over = await quotes()
    expect(over.status, over.explain()).toBe(429)
    expect(over.headers.get('gateway-error')).toBe('quota_exceeded')
    gw.clock.set('2027-03-01T23:59:59Z')
    expect((await quotes()).headers.get('gateway-error')).toBe('quota_exceeded')
    gw.clock.set('2027-03-02T00:00:00Z')
    const next = await quotes()
    expect(next.status, next.explain()).toBe(200)
  })
})

describe('GET /api/v1/search (30/min per ip burst 10, 100/min per header X-Tenant)', () => {
  test('per address: 10 at once, 30 a minute', async () => {
    const gw = await kit()
    const search = () => gw.request('GET /api/v1/search?q=book', { ip: '203.0.113.9' })
    for (let burst = 0; burst < 3; burst++) {
      expect(await statuses(10, search)).toEqual(ok(10))
      const over = await search()
      expect(over.status, over.explain()).toBe(429)
      expect(over.headers.get('gateway-error')).toBe('rate_limited')
      gw.clock.advance('20s')
    }
    // 30 within the minute, each burst 20s after the one before.
    expect(gw.upstream('users').requests).toHaveLength(30)
    expect(gw.upstream('users').last!.path).toBe('/search?q=book')
    // Another address is not affected.
    expect((await gw.request('GET /api/v1/search', { ip: '203.0.113.10' })).status).toBe(200)
  })

  test('per tenant: 100 a minute across addresses', async () => {
    const gw = await kit()
    const search = (i: number) => gw.request('GET /api/v1/search', { ip: `10.0.0.${i}`, headers: { 'X-Tenant': 'acme' } })
    for (let i = 0; i < 100; i++) expect((await search(i % 20)).status).toBe(200)
    const over = await search(99)
    expect(over.status, over.explain()).toBe(429)
    expect(over.headers.get('gateway-error')).toBe('rate_limited')
    // Another tenant from the same address is not affected.
    expect((await gw.request('GET /api/v1/search', { ip: '10.0.0.99', headers: { 'X-Tenant': 'globex' } })).status).toBe(200)
    gw.clock.advance('1m')
    expect((await search(98)).status).toBe(200)
  })

  test('a request refused by one limit is counted by neither', async () => {
    const gw = await kit()
    const from = (ip: string) => gw.request('GET /api/v1/search', { ip, headers: { 'X-Tenant': 'acme' } })
    // One address spends its burst and is refused 20 times more: the tenant counts only the 10.
    for (let i = 0; i < 30; i++) await from('10.1.0.1')
    expect(gw.upstream('users').requests).toHaveLength(10)
    // 90 more for the tenant from other addresses still pass.
    for (let i = 0; i < 90; i++) expect((await from(`10.2.0.${i}`)).status).toBe(200)
    expect((await from('10.3.0.1')).status).toBe(429)
  })
})
