// How users unit-test their own policies: in process, no gateway port, mock upstreams.
// This file tests the shipped example policies in ./policies.
import { afterAll, expect, test } from 'bun:test'
import { buildProgram, renderDiagnostics } from '../../src/index.ts'

const orders = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  fetch: (req) => Response.json({ path: new URL(req.url).pathname, forwardedFor: req.headers.get('x-forwarded-for') }),
})
afterAll(() => void orders.stop(true))

const built = await buildProgram('./policies', { upstreams: { orders: `http://127.0.0.1:${orders.port}` } })
if (built.diagnostics) throw new Error(renderDiagnostics(built.diagnostics))
const program = built.program

test('the example policies check clean', () => {
  expect(program.routes.length).toBeGreaterThan(5)
})

test('GET /api/v1/orders/{id:int} is rewritten to the orders service', async () => {
  const res = await program.fetch('http://gateway.test/api/v1/orders/42')
  expect(res.status).toBe(200)
  const body = (await res.json()) as { path: string; forwardedFor: string }
  expect(body.path).toStartWith('/orders/42')
  expect(body.forwardedFor).toBe('127.0.0.1')
})

test('a non-numeric order id has no route', async () => {
  const res = await program.fetch('http://gateway.test/api/v1/orders/abc')
  expect(res.status).toBe(404)
  expect(res.headers.get('gateway-error')).toBe('no_route')
})

test('the client address is given per request', async () => {
  const res = await program.fetch(new Request('http://gateway.test/api/v1/orders/1'), { ip: '203.0.113.9', tls: false })
  const body = (await res.json()) as { forwardedFor: string }
  expect(body.forwardedFor).toBe('203.0.113.9')
})
