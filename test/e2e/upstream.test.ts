// Upstreams end to end: round robin and weights, timeouts, unreachable targets, and
// the line between gateway errors and upstream errors.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { closedPort as refusing, policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem, expectRawProblem, raw } from '../helpers/http.ts'

let named: Upstream[] = []
let slow: Upstream
let errors: Upstream
let closedPort: number
let gw: RunningGateway
let dir: string

const PROBLEM = JSON.stringify({ type: 'https://upstream.example/err', title: 'Upstream says no', status: 409 })

beforeAll(async () => {
  named = ['A', 'B', 'C', 'D'].map((name) => startUpstream(() => new Response(name)))
  slow = startUpstream(async () => {
    await Bun.sleep(3_000)
    return new Response('too late')
  })
  errors = startUpstream((req) => {
    const path = new URL(req.url).pathname
    if (path === '/500')
      return new Response('boom: stack trace here', { status: 500, headers: { 'content-type': 'text/plain', 'x-upstream': 'yes' } })
    if (path === '/503') return new Response('down for maintenance', { status: 503, headers: { 'content-type': 'text/plain', 'retry-after': '120' } })
    if (path === '/409') return new Response(PROBLEM, { status: 409, headers: { 'content-type': 'application/problem+json' } })
    if (path === '/fake') return new Response('fine', { status: 200, headers: { 'gateway-error': 'bad_gateway', 'x-upstream': 'yes' } })
    if (path === '/fake-404') return new Response('nope', { status: 404, headers: { 'Gateway-Error': 'no_route' } })
    return new Response('?', { status: 400 })
  })
  // A port nothing listens on: connection refused.
  closedPort = refusing()
  const [a, b, c, d] = named as [Upstream, Upstream, Upstream, Upstream]
  dir = policyDir({
    'upstreams.policy': `
upstream rr { target ${a.url}; target ${b.url} }
upstream weighted {
  target ${c.url} weight 3
  target ${d.url}
}
upstream slowpool { target ${slow.url}; timeout 300ms }
upstream dead { target http://127.0.0.1:${closedPort} }
upstream errors { target ${errors.url} }

match GET /rr { proxy rr }
match GET /weighted { proxy weighted }
match GET /slow { proxy slowpool }
match GET /slow-longer { proxy slowpool timeout 600ms }
match GET /dead { proxy dead }
match GET /dead-inline { proxy http://127.0.0.1:${closedPort}/base }
match GET /err/{rest*} { strip prefix /err; proxy errors }
match GET /ok { respond 200 text "ok" }
`,
  })
  gw = await startGateway(dir)
})
afterAll(async () => {
  await gw?.stop()
  for (const u of named) u.stop()
  slow?.stop()
  errors?.stop()
  removeDir(dir)
})

async function sequence(path: string, n: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < n; i++) out.push(await (await gw.fetch(path)).text())
  return out
}
const count = (xs: string[]) => xs.reduce<Record<string, number>>((m, x) => ((m[x] = (m[x] ?? 0) + 1), m), {})

describe('balancing', () => {
  test('two targets take turns', async () => {
    const seq = await sequence('/rr', 8)
    expect(count(seq)).toEqual({ A: 4, B: 4 })
    for (let i = 1; i < seq.length; i++) expect(seq[i]).not.toBe(seq[i - 1])
  })

  test('weights 3:1 give 3:1 over 8 requests, spread out', async () => {
    const seq = await sequence('/weighted', 8)
    expect(count(seq)).toEqual({ C: 6, D: 2 })
    expect(seq.slice(0, 4).filter((x) => x === 'D').length).toBe(1)
  })
})

describe('timeouts and unreachable upstreams', () => {
  test('an upstream timeout answers 504 upstream_timeout in time', async () => {
    const started = performance.now()
    await expectProblem(await gw.fetch('/slow'), 504, 'upstream_timeout')
    const took = performance.now() - started
    expect(took).toBeGreaterThanOrEqual(250)
    expect(took).toBeLessThan(1_500)
  })

  test("a per-route timeout overrides the upstream's", async () => {
    const started = performance.now()
    await expectProblem(await gw.fetch('/slow-longer'), 504, 'upstream_timeout')
    const took = performance.now() - started
    expect(took).toBeGreaterThanOrEqual(550)
    expect(took).toBeLessThan(2_000)
  })

  test('a closed port is a 502 bad_gateway', async () => {
    await expectProblem(await gw.fetch('/dead'), 502, 'bad_gateway')
    await expectProblem(await gw.fetch('/dead-inline'), 502, 'bad_gateway')
  })

  test('the access log records the gateway error and the upstream', async () => {
    const res = await gw.fetch('/dead')
    const { instance } = await expectProblem(res, 502, 'bad_gateway')
    const line = JSON.parse(await gw.waitFor('stdout', new RegExp(`"request_id":"${instance}"`))) as Record<string, unknown>
    expect(line.status).toBe(502)
    expect(line.gateway_error).toBe('bad_gateway')
    expect(line.upstream).toBe(`http://127.0.0.1:${closedPort}`)
  })
})

describe('upstream errors are not gateway errors', () => {
  test('a 500 with a body passes through unchanged', async () => {
    const res = await gw.fetch('/err/500')
    expect(res.status).toBe(500)
    expect(res.headers.get('content-type')).toBe('text/plain')
    expect(res.headers.get('x-upstream')).toBe('yes')
    expect(res.headers.get('gateway-error')).toBeNull()
    expect(await res.text()).toBe('boom: stack trace here')
  })

  test('a 503 keeps its Retry-After', async () => {
    const res = await gw.fetch('/err/503')
    expect([res.status, res.headers.get('retry-after'), res.headers.get('gateway-error'), await res.text()]).toEqual([
      503,
      '120',
      null,
      'down for maintenance',
    ])
  })

  test('an upstream problem+json body is passed through as the upstream wrote it', async () => {
    const res = await gw.fetch('/err/409')
    expect(res.status).toBe(409)
    expect(res.headers.get('content-type')).toBe('application/problem+json')
    expect(res.headers.get('gateway-error')).toBeNull()
    expect(await res.text()).toBe(PROBLEM)
  })

  test('a Gateway-Error header sent by an upstream is removed', async () => {
    const res = await gw.fetch('/err/fake')
    expect([res.status, res.headers.get('gateway-error'), res.headers.get('x-upstream'), await res.text()]).toEqual([200, null, 'yes', 'fine'])
    const notFound = await gw.fetch('/err/fake-404')
    expect([notFound.status, notFound.headers.get('gateway-error'), await notFound.text()]).toEqual([404, null, 'nope'])
  })
})

describe('malformed requests', () => {
  test('two Host headers are a 400 bad_request', async () => {
    expectRawProblem(await raw(gw.url, 'GET', '/ok', ['Host: a.example', 'Host: b.example']), 400, 'bad_request')
  })

  test('a Host header with a path or userinfo is a 400 bad_request', async () => {
    expectRawProblem(await raw(gw.url, 'GET', '/ok', ['Host: a.example/evil']), 400, 'bad_request')
    expectRawProblem(await raw(gw.url, 'GET', '/ok', ['Host: user@a.example']), 400, 'bad_request')
  })

  test('malformed percent-encoding is a 400 bad_request', async () => {
    expectRawProblem(await raw(gw.url, 'GET', '/%zz'), 400, 'bad_request')
  })

  test('a well-formed request on the same listener still works', async () => {
    const res = await raw(gw.url, 'GET', '/ok')
    expect([res.status, res.body]).toEqual([200, 'ok'])
  })
})
