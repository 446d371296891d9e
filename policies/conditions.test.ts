// conditions.policy: `when CONDITION { … }` blocks choosing the upstream, adding a query
// parameter, a response header and an address check, answering one group from the gateway,
// and a route whose only terminals are inside `when` blocks.
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { loadGateway } from 'portcullis/testing'

const gw = await loadGateway(import.meta.dir, { upstreams: { orders: 'record', users: 'record' } })
afterAll(() => gw.close())
const orders = gw.upstream('orders')
const users = gw.upstream('users')
beforeEach(() => {
  orders.clear()
  users.clear()
})

describe('GET,DELETE /api/v2/users/{name}', () => {
  test('goes to orders as /users/{name} by default', async () => {
    const r = await gw.request('GET /api/v2/users/ada')
    expect(r.status, r.explain()).toBe(200)
    expect(orders.last!.path).toBe('/users/ada')
    expect(orders.last!.headers['x-release']).toBeUndefined()
    expect(users.requests).toHaveLength(0)
  })

  test.each(['beta', 'canary'])('X-Env: %s goes to users, marked X-Release: beta', async (env) => {
    const r = await gw.request('GET /api/v2/users/ada', { headers: { 'X-Env': env } })
    expect(r.status, r.explain()).toBe(200)
    expect(users.last!.path).toBe('/users/ada')
    expect(users.last!.headers['x-release']).toBe('beta')
    expect(orders.requests).toHaveLength(0)
  })

  test('another X-Env goes to orders', async () => {
    await gw.request('GET /api/v2/users/ada', { headers: { 'X-Env': 'prod' } })
    expect(orders.requests).toHaveLength(1)
    expect(users.requests).toHaveLength(0)
  })

  test.each([
    ['Mozilla/5.0 (Linux; Android 14; Pixel 8)', '/users/ada?page_size=20'],
    ['Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)', '/users/ada?page_size=20'],
    ['Mozilla/5.0 (X11; Linux x86_64)', '/users/ada'],
  ])('User-Agent %s → %s', async (agent, path) => {
    await gw.request('GET /api/v2/users/ada', { headers: { 'User-Agent': agent } })
    expect(orders.last!.path).toBe(path)
  })

  test('?debug=1 from a local address adds X-Debug-User to the answer', async () => {
    const r = await gw.request('GET /api/v2/users/ada?debug=1', { ip: '127.0.0.1' })
    expect(r.headers.get('x-debug-user')).toBe('ada')
  })

  test('…not from elsewhere, and not without debug=1', async () => {
    const remote = await gw.request('GET /api/v2/users/ada?debug=1', { ip: '203.0.113.9' })
    expect(remote.status, remote.explain()).toBe(200)
    expect(remote.headers.has('x-debug-user')).toBe(false)
    expect(remote.trace.steps.find((s) => s.at.endsWith('conditions.policy:14'))?.outcome).toBe('skipped')
    const local = await gw.request('GET /api/v2/users/ada?debug=0')
    expect(local.headers.has('x-debug-user')).toBe(false)
  })

  test('DELETE only from a local address: 403 forbidden from elsewhere', async () => {
    const local = await gw.request('DELETE /api/v2/users/ada', { ip: '127.0.0.1' })
    expect(local.status, local.explain()).toBe(200)
    expect(orders.last).toMatchObject({ method: 'DELETE', path: '/users/ada' })
    orders.clear()
    const remote = await gw.request('DELETE /api/v2/users/ada', { ip: '203.0.113.9' })
    expect(remote.status, remote.explain()).toBe(403)
    expect(remote.headers.get('gateway-error')).toBe('forbidden')
    expect(orders.requests).toHaveLength(0)
  })

  test('GET from elsewhere is fine: the address check is skipped', async () => {
    const r = await gw.request('GET /api/v2/users/ada', { ip: '203.0.113.9' })
    expect(r.status, r.explain()).toBe(200)
    expect(r.trace.steps.find((s) => s.directive.startsWith('allow ip'))).toMatchObject({
      outcome: 'skipped',
      at: expect.stringMatching(/conditions\.policy:11$/),
    })
  })

  test('other methods are not allowed', async () => {
    const r = await gw.request('POST /api/v2/users/ada', { body: {} })
    expect(r.status, r.explain()).toBe(405)
  })
})

describe('GET /api/v2/catalog', () => {
  test('resellers (partner_b) get the preview from the gateway', async () => {
    const r = await gw.request('GET /api/v2/catalog', { as: 'partner_b' })
    expect(r.status, r.explain()).toBe(200)
    expect(await r.json()).toEqual({ items: [], note: 'reseller preview' })
    expect(orders.requests).toHaveLength(0)
  })

  test('partners (partner_a) reach orders /catalog with their partner code', async () => {
    const r = await gw.request('GET /api/v2/catalog', { as: 'partner_a' })
    expect(r.status, r.explain()).toBe(200)
    expect(orders.last!.path).toBe('/catalog')
    expect(orders.last!.headers['x-partner-code']).toBe('PA-001')
  })

  test('without a key: 401', async () => {
    const r = await gw.request('GET /api/v2/catalog')
    expect(r.status, r.explain()).toBe(401)
  })
})

describe('GET,POST /api/v2/ping (terminals only in when blocks)', () => {
  test('GET answers pong', async () => {
    const r = await gw.request('GET /api/v2/ping')
    expect(r.status, r.explain()).toBe(200)
    expect(await r.text()).toBe('pong')
  })

  test('POST answers 204', async () => {
    const r = await gw.request('POST /api/v2/ping')
    expect(r.status, r.explain()).toBe(204)
    expect(await r.text()).toBe('')
  })

  test('other methods are not allowed', async () => {
    const r = await gw.request('PUT /api/v2/ping')
    expect(r.status, r.explain()).toBe(405)
    expect(r.headers.get('allow')).toBe('GET, POST')
    expect(orders.requests.length + users.requests.length).toBe(0)
  })
})
