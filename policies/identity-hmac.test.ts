// identity-hmac.policy: RFC 9421 signed requests from partner_hmac. The kit signs with `as:`; one
// test signs as the partner's own client does (docs/sign-request.ts) with the demo secret.
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadGateway, type Prepared } from 'portcullis/testing'
import { signRequest } from '../docs/sign-request.ts'

const gw = await loadGateway(import.meta.dir, { upstreams: { orders: 'record' } })
afterAll(() => gw.close())
const orders = gw.upstream('orders')
beforeEach(() => orders.clear())

const ORDER = { sku: 'A-1', qty: 2 }
const json = { 'Content-Type': 'application/json' }

// The same prepared request with some of it changed after it was signed.
const tampered = (p: Prepared, change: { body?: string; headers?: Record<string, string> }): Prepared => {
  const headers = new Headers(p.headers)
  for (const [k, v] of Object.entries(change.headers ?? {})) headers.set(k, v)
  return { ...p, headers, body: change.body === undefined ? p.body : new TextEncoder().encode(change.body) }
}

describe('POST /api/v1/partners/orders (require hmac window 60s covers "content-type")', () => {
  test('a signed order reaches /orders as partner_hmac, with its partner code', async () => {
    const r = await gw.request('POST /api/v1/partners/orders', { as: 'partner_hmac', body: ORDER })
    expect(r.status, r.explain()).toBe(200)
    expect(r.explain()).toContain('caller: app partner_hmac')
    const seen = orders.last!
    expect(seen.path).toBe('/orders')
    expect(JSON.parse(seen.body)).toEqual(ORDER)
    expect(seen.headers['x-consumer']).toBe('partner_hmac')
    expect(seen.headers['x-partner-code']).toBe('PH-001')
  })

  test("the partner's own client, with the demo secret file, is accepted", async () => {
    const secret = readFileSync(join(import.meta.dir, 'demo-secrets/partner_hmac.secret'), 'utf8').trim()
    const body = JSON.stringify(ORDER)
    const headers = await signRequest(
      'POST',
      'http://gateway.test/api/v1/partners/orders',
      { keyid: 'ak_partner_hmac', secret },
      body,
      'application/json',
    )
    const r = await gw.request('POST /api/v1/partners/orders', { headers, body })
    expect(r.status, r.explain()).toBe(200)
    expect(orders.last!.headers['x-consumer']).toBe('partner_hmac')
  })

  test('unsigned: 401 with WWW-Authenticate: Signature', async () => {
    const r = await gw.request('POST /api/v1/partners/orders', { body: ORDER })
    expect(r.status, r.explain()).toBe(401)
    expect(r.headers.get('gateway-error')).toBe('unauthenticated')
    expect(r.headers.get('www-authenticate')).toStartWith('Signature')
    expect(orders.requests).toHaveLength(0)
  })

  test('a replay (the same nonce again) is refused', async () => {
    const signed = await gw.prepare('POST /api/v1/partners/orders', { as: 'partner_hmac', body: ORDER })
    expect((await gw.send(signed)).status).toBe(200)
    const again = await gw.send(signed)
    expect(again.status, again.explain()).toBe(401)
    expect(again.trace.steps.find((s) => s.outcome === 'refused')?.detail).toContain('nonce')
    expect(orders.requests).toHaveLength(1)
  })

  test('a signature is good for 60s', async () => {
    // `created` is in whole seconds: start on one, so that 60s later it is exactly 60s old.
    gw.clock.set(Math.ceil(gw.clock.now() / 1000) * 1000)
    const fresh = await gw.prepare('POST /api/v1/partners/orders', { as: 'partner_hmac', body: ORDER })
    const stale = await gw.prepare('POST /api/v1/partners/orders', { as: 'partner_hmac', body: ORDER })
    gw.clock.advance('60s')
    expect((await gw.send(fresh)).status).toBe(200)
    gw.clock.advance('1s')
    const r = await gw.send(stale)
    expect(r.status, r.explain()).toBe(401)
    expect(r.trace.steps.find((s) => s.outcome === 'refused')?.detail).toContain('too old')
  })

  test('a body changed after signing does not match its Content-Digest', async () => {
    const signed = await gw.prepare('POST /api/v1/partners/orders', { as: 'partner_hmac', body: ORDER })
    const r = await gw.send(tampered(signed, { body: JSON.stringify({ ...ORDER, qty: 9 }) }))
    expect(r.status, r.explain()).toBe(401)
    expect(orders.requests).toHaveLength(0)
  })

  test('the Content-Type is signed too: changing it breaks the signature', async () => {
    const signed = await gw.prepare('POST /api/v1/partners/orders', { as: 'partner_hmac', body: ORDER, headers: json })
    expect(signed.headers.get('signature-input')).toContain('"content-type"')
    const r = await gw.send(tampered(signed, { headers: { 'Content-Type': 'text/plain' } }))
    expect(r.status, r.explain()).toBe(401)
  })

  test('a key id no app has: 401', async () => {
    const signed = await gw.prepare('POST /api/v1/partners/orders', { as: 'partner_hmac', body: ORDER })
    const input = signed.headers.get('signature-input')!.replace('keyid="ak_partner_hmac"', 'keyid="ak_nobody"')
    const r = await gw.send(tampered(signed, { headers: { 'Signature-Input': input } }))
    expect(r.status, r.explain()).toBe(401)
  })

  test('a body over 64kb is 413 before the signature is checked', async () => {
    const r = await gw.request('POST /api/v1/partners/orders', { as: 'partner_hmac', body: 'x'.repeat(64 * 1024 + 1), headers: json })
    expect(r.status, r.explain()).toBe(413)
    expect(r.headers.get('gateway-error')).toBe('payload_too_large')
    expect(r.trace.steps.find((s) => s.outcome === 'refused')?.directive).toBe('limit body')
  })

  test('an API key is not enough here', async () => {
    const r = await gw.request('POST /api/v1/partners/orders', { apiKey: 'partner_a', body: ORDER })
    expect(r.status, r.explain()).toBe(401)
  })
})

describe('GET /api/v1/partners/orders/{id:int} (require hmac or key)', () => {
  test('a signed GET from partner_hmac (no body, so no Content-Digest)', async () => {
    const signed = await gw.prepare('GET /api/v1/partners/orders/7', { as: 'partner_hmac' })
    expect(signed.headers.has('content-digest')).toBe(false)
    const r = await gw.send(signed)
    expect(r.status, r.explain()).toBe(200)
    expect(orders.last!.path).toBe('/orders/7')
    expect(orders.last!.headers['x-consumer']).toBe('partner_hmac')
  })

  test('or an API key: partner_a, which has no secret, calls with its key', async () => {
    const r = await gw.request('GET /api/v1/partners/orders/7', { as: 'partner_a' })
    expect(r.status, r.explain()).toBe(200)
    expect(r.explain()).toContain('via key')
    expect(orders.last!.headers['x-consumer']).toBe('partner_a')
  })

  test('neither: 401', async () => {
    const r = await gw.request('GET /api/v1/partners/orders/7')
    expect(r.status, r.explain()).toBe(401)
    expect(r.headers.get('gateway-error')).toBe('unauthenticated')
    expect(orders.requests).toHaveLength(0)
  })

  test('a bad signature is not rescued by the absence of a key', async () => {
    const signed = await gw.prepare('GET /api/v1/partners/orders/7', { as: 'partner_hmac' })
    const r = await gw.send(tampered(signed, { headers: { Signature: 'sig1=:AAAA:' } }))
    expect(r.status, r.explain()).toBe(401)
  })
})
