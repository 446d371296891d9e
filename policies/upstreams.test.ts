// upstreams.policy: the two named pools. The kit sends every target of a pool to one mock, so
// what is tested here is what a pool does whichever target answers: retries (which answers,
// which methods, how many tries) and the pool's timeouts. Weights, balancing and health are
// properties of targets; the kit does not tell them apart.
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { loadGateway } from 'portcullis/testing'

const gw = await loadGateway(import.meta.dir, { upstreams: { orders: 'record', users: 'record' } })
afterAll(() => gw.close())
const orders = gw.upstream('orders')
const users = gw.upstream('users')
beforeEach(() => {
  orders.clear()
  orders.respond('record')
  users.clear()
  users.respond('record')
})

// Answers `statuses` in turn, then 200.
function failing(...statuses: number[]) {
  let i = 0
  return () => (i < statuses.length ? new Response('unavailable', { status: statuses[i++] }) : Response.json({ tries: i + 1 }))
}

describe('orders: retry 2 on connect-error, 502, 503 within 8s', () => {
  test('a GET answered 503 then 502 is tried again: the client gets the third answer', async () => {
    orders.respond(failing(503, 502))
    const r = await gw.request('GET /api/v1/orders/42')
    expect(r.status, r.explain()).toBe(200)
    expect(orders.requests.map((x) => x.path)).toEqual(['/orders/42', '/orders/42', '/orders/42'])
  })

  test('at most 2 retries: after three 503s the client gets the 503', async () => {
    orders.respond(failing(503, 503, 503, 503))
    const r = await gw.request('GET /api/v1/orders/42')
    expect(r.status, r.explain()).toBe(503)
    expect(orders.requests).toHaveLength(3)
  })

  test('other answers are not retried (500, 504, 404)', async () => {
    for (const status of [500, 504, 404]) {
      orders.clear()
      orders.respond(failing(status))
      const r = await gw.request('GET /api/v1/orders/42')
      expect(r.status, r.explain()).toBe(status)
      expect(orders.requests).toHaveLength(1)
    }
  })

  test('a POST is never retried (not idempotent, no retry-unsafe)', async () => {
    orders.respond(failing(503))
    const r = await gw.request('POST /api/v1/orders', { body: { sku: 'A' } })
    expect(r.status, r.explain()).toBe(503)
    expect(orders.requests).toHaveLength(1)
  })

  test('HEAD is retried like GET', async () => {
    orders.respond(failing(502))
    const r = await gw.request('HEAD /api/v1/orders/42')
    expect(r.status, r.explain()).toBe(200)
    expect(orders.requests).toHaveLength(2)
  })
})

describe('users: no retries', () => {
  test('a 503 from users reaches the client after one try', async () => {
    users.respond(failing(503))
    const r = await gw.request('GET /api/v1/users/ada')
    expect(r.status, r.explain()).toBe(503)
    expect(users.requests).toHaveLength(1)
  })
})
