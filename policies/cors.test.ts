// cors.policy: `cors` on a keyed route with credentials (preflights answered by the gateway,
// before `require key`, never reaching the upstream) and public data for any site (`cors *`).
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { loadGateway } from 'portcullis/testing'

const gw = await loadGateway(import.meta.dir, { upstreams: { orders: 'record' } })
afterAll(() => gw.close())
const orders = gw.upstream('orders')
beforeEach(() => orders.clear())

const preflight = (origin: string, method = 'POST', headers?: string) => ({
  headers: {
    Origin: origin,
    'Access-Control-Request-Method': method,
    ...(headers === undefined ? {} : { 'Access-Control-Request-Headers': headers }),
  },
})
const corsHeaders = (h: Headers) => [...h.keys()].filter((k) => k.startsWith('access-control-'))

describe('GET,POST /api/v1/widgets (listed origins, credentials)', () => {
  test('a preflight from app.example.com: 204 from the gateway, no key needed, the upstream never asked', async () => {
    const r = await gw.request('OPTIONS /api/v1/widgets', preflight('https://app.example.com', 'POST', 'content-type, x-api-key'))
    expect(r.status, r.explain()).toBe(204)
    expect(r.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
    expect(r.headers.get('access-control-allow-methods')).toBe('GET, POST')
    expect(r.headers.get('access-control-allow-headers')?.toLowerCase()).toBe('x-api-key, content-type')
    expect(r.headers.get('access-control-allow-credentials')).toBe('true')
    expect(r.headers.get('access-control-max-age')).toBe('600')
    expect(r.headers.get('vary')).toContain('Origin')
    expect(orders.requests).toHaveLength(0)
  })

  test.each(['https://shop.example.net', 'https://a.b.example.net', 'http://localhost:3000'])('%s is allowed too', async (origin) => {
    const r = await gw.request('OPTIONS /api/v1/widgets', preflight(origin, 'GET'))
    expect(r.status, r.explain()).toBe(204)
    expect(r.headers.get('access-control-allow-origin')).toBe(origin)
  })

  test.each(['https://evil.example.org', 'https://example.net', 'http://app.example.com', 'http://localhost:3001', 'null'])(
    'a preflight from %s: 403 forbidden without Access-Control headers',
    async (origin) => {
      const r = await gw.request('OPTIONS /api/v1/widgets', preflight(origin))
      expect(r.status, r.explain()).toBe(403)
      expect(r.headers.get('gateway-error')).toBe('forbidden')
      expect(corsHeaders(r.headers)).toEqual([])
      expect(orders.requests).toHaveLength(0)
    },
  )

  test('a preflight asking for a method the route does not serve: 405; for a header not listed: 403', async () => {
    const del = await gw.request('OPTIONS /api/v1/widgets', preflight('https://app.example.com', 'DELETE'))
    expect(del.status, del.explain()).toBe(405)
    expect(del.headers.get('gateway-error')).toBe('method_not_allowed')
    const header = await gw.request('OPTIONS /api/v1/widgets', preflight('https://app.example.com', 'POST', 'x-secret'))
    expect(header.status, header.explain()).toBe(403)
    expect(corsHeaders(header.headers)).toEqual([])
  })

  test('preflights are not counted by the throttle', async () => {
    for (let i = 0; i < 70; i++) expect((await gw.request('OPTIONS /api/v1/widgets', preflight('https://app.example.com'))).status).toBe(204)
    const r = await gw.request('GET /api/v1/widgets', { as: 'partner_enc', headers: { Origin: 'https://app.example.com' } })
    expect(r.status, r.explain()).toBe(200)
  })

  test('the call itself, with a key: proxied to /widgets, with the CORS headers on the answer', async () => {
    const r = await gw.request('POST /api/v1/widgets', { as: 'partner_a', headers: { Origin: 'https://app.example.com' }, body: { name: 'w' } })
    expect(r.status, r.explain()).toBe(200)
    expect(orders.last).toMatchObject({ method: 'POST', path: '/widgets' })
    expect(r.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
    expect(r.headers.get('access-control-allow-credentials')).toBe('true')
    expect(r.headers.get('access-control-expose-headers')?.toLowerCase()).toBe('x-request-id, ratelimit-remaining')
    expect(r.headers.get('vary')).toContain('Origin')
  })

  test('its 401 without a key carries the CORS headers too, so the page can read it', async () => {
    const r = await gw.request('GET /api/v1/widgets', { headers: { Origin: 'https://app.example.com' } })
    expect(r.status, r.explain()).toBe(401)
    expect(r.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
    expect(orders.requests).toHaveLength(0)
  })

  test('a call from an origin not listed is served, without CORS headers (the browser keeps it from the page)', async () => {
    const r = await gw.request('GET /api/v1/widgets', { as: 'partner_a', headers: { Origin: 'https://evil.example.org' } })
    expect(r.status, r.explain()).toBe(200)
    expect(corsHeaders(r.headers)).toEqual([])
    expect(r.headers.get('vary')).toContain('Origin')
  })

  test('no Origin (curl): no CORS headers, Vary: Origin all the same', async () => {
    const r = await gw.request('GET /api/v1/widgets', { as: 'partner_a' })
    expect(r.status, r.explain()).toBe(200)
    expect(corsHeaders(r.headers)).toEqual([])
    expect(r.headers.get('vary')).toContain('Origin')
  })

  test('60 calls a minute per app, then 429 with CORS headers', async () => {
    const send = () => gw.request('GET /api/v1/widgets', { as: 'partner_b', headers: { Origin: 'https://app.example.com' } })
    for (let i = 0; i < 60; i++) expect((await send()).status).toBe(200)
    const over = await send()
    expect(over.status, over.explain()).toBe(429)
    expect(over.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
  })

  test('OPTIONS without a preflight is not allowed on this route', async () => {
    const r = await gw.request('OPTIONS /api/v1/widgets', { headers: { Origin: 'https://app.example.com' } })
    expect(r.status, r.explain()).toBe(405)
  })
})

describe('GET,HEAD /api/v1/public/{rest*} (cors *)', () => {
  test('any site gets Access-Control-Allow-Origin: *, no credentials', async () => {
    const r = await gw.request('GET /api/v1/public/holidays/2027', { headers: { Origin: 'https://anyone.example' } })
    expect(r.status, r.explain()).toBe(200)
    expect(orders.last!.path).toBe('/public/holidays/2027')
    expect(r.headers.get('access-control-allow-origin')).toBe('*')
    expect(r.headers.has('access-control-allow-credentials')).toBe(false)
  })

  test('a preflight: 204 for an hour', async () => {
    const r = await gw.request('OPTIONS /api/v1/public/holidays/2027', preflight('https://anyone.example', 'GET'))
    expect(r.status, r.explain()).toBe(204)
    expect(r.headers.get('access-control-allow-origin')).toBe('*')
    expect(r.headers.get('access-control-max-age')).toBe('3600')
    expect(orders.requests).toHaveLength(0)
  })

  test('but never the origin null', async () => {
    const r = await gw.request('OPTIONS /api/v1/public/x', preflight('null', 'GET'))
    expect(r.status, r.explain()).toBe(403)
  })

  test('a preflight for POST asks about a method no route here serves: 405', async () => {
    const r = await gw.request('OPTIONS /api/v1/public/x', preflight('https://anyone.example', 'POST'))
    expect(r.status, r.explain()).toBe(405)
  })
})
