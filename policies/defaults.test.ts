// defaults.policy: what every route gets before its own directives. Tried on ordinary routes of
// the other files (users.policy's name route, orders.policy's order route, health.policy's /healthz).
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { loadGateway } from 'portcullis/testing'

const gw = await loadGateway(import.meta.dir, {
  upstreams: {
    // An upstream that says too much about itself.
    users: () => Response.json({ ok: true }, { headers: { 'x-powered-by': 'Express', 'x-served-by': 'node-7' } }),
    orders: 'record',
  },
})
afterAll(() => gw.close())
const users = gw.upstream('users')
beforeEach(() => users.clear())

describe('limit body 1mb', () => {
  test('1mb passes, a byte more is 413 payload_too_large and never reaches the upstream', async () => {
    const ok = await gw.request('POST /legacy/user/7/info', { body: new Uint8Array(1024 * 1024) })
    expect(ok.status, ok.explain()).toBe(200)
    expect(users.last!.body).toHaveLength(1024 * 1024)
    users.clear()
    const big = await gw.request('POST /legacy/user/7/info', { body: new Uint8Array(1024 * 1024 + 1) })
    expect(big.status, big.explain()).toBe(413)
    expect(big.headers.get('gateway-error')).toBe('payload_too_large')
    expect(big.trace.steps.find((s) => s.outcome === 'refused')?.at).toEndWith('policies/defaults.policy:7')
    expect(users.requests).toHaveLength(0)
  })
})

describe('deny ip: the documentation ranges', () => {
  test.each(['192.0.2.10', '198.51.100.255', '2001:db8::1'])('%s is refused with 403 forbidden', async (ip) => {
    const r = await gw.request('GET /api/v1/users/ada', { ip })
    expect(r.status, r.explain()).toBe(403)
    expect(r.headers.get('gateway-error')).toBe('forbidden')
    expect(r.trace.steps.find((s) => s.outcome === 'refused')?.directive).toBe('deny ip')
    expect(users.requests).toHaveLength(0)
  })

  test.each(['203.0.113.9', '192.0.3.1', '2001:db9::1', '127.0.0.1'])('%s passes', async (ip) => {
    const r = await gw.request('GET /api/v1/users/ada', { ip })
    expect(r.status, r.explain()).toBe(200)
  })

  test('routes the gateway answers itself are covered too', async () => {
    const r = await gw.request('GET /healthz', { ip: '192.0.2.1' })
    expect(r.status, r.explain()).toBe(403)
  })
})

describe('request headers', () => {
  test('the client cannot send X-Debug; the upstream always gets X-Gateway: portcullis', async () => {
    const r = await gw.request('GET /api/v1/users/ada', { headers: { 'X-Debug': '1', 'X-Gateway': 'spoofed' } })
    expect(r.status, r.explain()).toBe(200)
    expect(users.last!.headers['x-debug']).toBeUndefined()
    expect(users.last!.headers['x-gateway']).toBe('portcullis')
  })

  test('on every route, the orders pool too', async () => {
    await gw.request('GET /api/v1/orders/1', { headers: { 'X-Debug': '1' } })
    const seen = gw.upstream('orders').last!
    expect(seen.headers['x-debug']).toBeUndefined()
    expect(seen.headers['x-gateway']).toBe('portcullis')
  })
})

describe('response headers', () => {
  test('X-Served-By: portcullis replaces the upstream one; X-Powered-By is removed', async () => {
    const r = await gw.request('GET /api/v1/users/ada')
    expect(r.headers.get('x-served-by')).toBe('portcullis')
    expect(r.headers.has('x-powered-by')).toBe(false)
  })

  test('answers the gateway makes itself get X-Served-By too', async () => {
    const r = await gw.request('GET /healthz')
    expect(r.status, r.explain()).toBe(200)
    expect(r.headers.get('x-served-by')).toBe('portcullis')
  })
})
