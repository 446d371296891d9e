// failover.policy: the inventory and reports pools and their routes. The kit sends every target
// of a pool to one mock, so the dead :9099 target, passive health and panic mode (properties of
// single targets, on real time) are not staged here; the routes, the body limit and which
// answers the pools retry are.
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { loadGateway } from 'portcullis/testing'

const gw = await loadGateway(import.meta.dir, { upstreams: { inventory: 'record', reports: 'record' } })
afterAll(() => gw.close())
const inventory = gw.upstream('inventory')
const reports = gw.upstream('reports')
beforeEach(() => {
  inventory.clear()
  inventory.respond('record')
  reports.clear()
  reports.respond('record')
})

describe('inventory', () => {
  test('GET and HEAD /api/v1/inventory/{sku} map to /inventory/{sku}', async () => {
    for (const method of ['GET', 'HEAD']) {
      const r = await gw.request(`${method} /api/v1/inventory/sku-1`)
      expect(r.status, r.explain()).toBe(200)
      expect(inventory.last).toMatchObject({ method, path: '/inventory/sku-1' })
    }
  })

  test('POST /api/v1/inventory/reservations forwards the body to /inventory/reservations', async () => {
    const r = await gw.request('POST /api/v1/inventory/reservations', { body: { sku: 'SKU-1', qty: 1 } })
    expect(r.status, r.explain()).toBe(200)
    expect(inventory.last).toMatchObject({ method: 'POST', path: '/inventory/reservations', body: '{"sku":"SKU-1","qty":1}' })
  })

  test('a reservation body over 16kb is 413 payload_too_large (retried bodies are kept in memory)', async () => {
    const ok = await gw.request('POST /api/v1/inventory/reservations', { body: 'x'.repeat(16 * 1024) })
    expect(ok.status, ok.explain()).toBe(200)
    inventory.clear()
    const big = await gw.request('POST /api/v1/inventory/reservations', { body: 'x'.repeat(16 * 1024 + 1) })
    expect(big.status, big.explain()).toBe(413)
    expect(big.headers.get('gateway-error')).toBe('payload_too_large')
    expect(inventory.requests).toHaveLength(0)
  })

  test('only connect errors are retried: a 503 answer goes back to the client after one try', async () => {
    inventory.respond(() => new Response('busy', { status: 503 }))
    const r = await gw.request('GET /api/v1/inventory/sku-1')
    expect(r.status, r.explain()).toBe(503)
    expect(inventory.requests).toHaveLength(1)
  })

  test('other paths under /api/v1/inventory do not match', async () => {
    const r = await gw.request('GET /api/v1/inventory/a/b')
    expect(r.status, r.explain()).toBe(404)
    const put = await gw.request('PUT /api/v1/inventory/reservations')
    expect(put.status, put.explain()).toBe(405)
  })
})

describe('reports', () => {
  test('GET /api/v1/reports/{rest*} maps to /reports/{rest*}', async () => {
    const r = await gw.request('GET /api/v1/reports/daily/2027-01-31?format=csv')
    expect(r.status, r.explain()).toBe(200)
    expect(reports.last!.path).toBe('/reports/daily/2027-01-31?format=csv')
  })

  test('a failed answer is passed on after one try (reports has no retry)', async () => {
    reports.respond(() => new Response('down', { status: 502 }))
    const r = await gw.request('GET /api/v1/reports/daily')
    expect(r.status, r.explain()).toBe(502)
    expect(reports.requests).toHaveLength(1)
  })
})
