// common/internal.policy: a file in a subdirectory, loaded with the rest. Routes for the local
// machine only: an allow-list of addresses with one address denied on top, and an admin API
// only private networks reach.
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { loadGateway } from 'portcullis/testing'

const gw = await loadGateway(import.meta.dir, { upstreams: { users: 'record' } })
afterAll(() => gw.close())
const users = gw.upstream('users')
beforeEach(() => users.clear())

describe('* /internal/echo/{rest*}', () => {
  test('forwards the rest of the path as it came, with the client address and the request id', async () => {
    const r = await gw.request('GET /internal/echo/a/b?c=d')
    expect(r.status, r.explain()).toBe(200)
    expect(r.trace.route?.location).toContain('policies/common/internal.policy:')
    const seen = users.last!
    expect(seen.path).toBe('/a/b?c=d')
    expect(seen.headers['x-client-ip']).toBe('127.0.0.1')
    expect(seen.headers['x-request-id-copy']).toBe(seen.headers['x-request-id'])
    expect(seen.headers['x-request-id-copy']).toBe(r.headers.get('x-request-id')!)
  })

  test.each(['POST', 'PUT', 'DELETE'])('any method: %s', async (method) => {
    const r = await gw.request(`${method} /internal/echo/x`, { body: 'hi', ip: '::1' })
    expect(r.status, r.explain()).toBe(200)
    expect(users.last).toMatchObject({ method, path: '/x', body: 'hi' })
    expect(users.last!.headers['x-client-ip']).toBe('::1')
  })

  test.each(['127.0.0.1', '127.9.9.9', '::1'])('loopback %s is admitted', async (ip) => {
    const r = await gw.request('GET /internal/echo/a', { ip })
    expect(r.status, r.explain()).toBe(200)
  })

  test('127.0.0.2 is denied although it is loopback', async () => {
    const r = await gw.request('GET /internal/echo/a', { ip: '127.0.0.2' })
    expect(r.status, r.explain()).toBe(403)
    expect(r.headers.get('gateway-error')).toBe('forbidden')
    expect(r.trace.steps.find((s) => s.outcome === 'refused')?.directive).toBe('deny ip')
    expect(users.requests).toHaveLength(0)
  })

  test.each(['10.1.2.3', '203.0.113.9', '2001:db9::1'])('%s is not on the allow-list: 403', async (ip) => {
    const r = await gw.request('GET /internal/echo/a', { ip })
    expect(r.status, r.explain()).toBe(403)
    expect(r.headers.get('gateway-error')).toBe('forbidden')
    expect(r.trace.steps.find((s) => s.outcome === 'refused')?.directive).toBe('allow ip')
    expect(users.requests).toHaveLength(0)
  })
})

describe('* /internal/admin/{rest*}', () => {
  test('refused from this machine (403 forbidden)', async () => {
    const r = await gw.request('GET /internal/admin/users')
    expect(r.status, r.explain()).toBe(403)
    expect(r.headers.get('gateway-error')).toBe('forbidden')
    expect(users.requests).toHaveLength(0)
  })

  test.each(['10.0.0.7', '172.16.4.4', '172.31.255.1', '192.168.1.20', 'fd00::5'])('admitted from private network %s, to /admin/…', async (ip) => {
    const r = await gw.request('DELETE /internal/admin/users/42', { ip })
    expect(r.status, r.explain()).toBe(200)
    expect(users.last).toMatchObject({ method: 'DELETE', path: '/admin/users/42' })
  })

  test.each(['172.32.0.1', '192.169.0.1', '8.8.8.8'])('refused from %s', async (ip) => {
    const r = await gw.request('GET /internal/admin/users', { ip })
    expect(r.status, r.explain()).toBe(403)
  })
})
