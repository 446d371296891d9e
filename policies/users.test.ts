// users.policy: parameter precedence, query and header rewrites, an old path kept alive and
// deprecated, a deprecated version with a successor link, and a host-scoped route.
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { loadGateway } from 'portcullis/testing'

const gw = await loadGateway(import.meta.dir, { upstreams: { users: 'record' } })
afterAll(() => gw.close())
const users = gw.upstream('users')
beforeEach(() => users.clear())

const UUID = '3f2c9a1e-7b4d-4c2a-9e8f-1a2b3c4d5e6f'

describe('precedence: /api/v1/users/{uid:uuid} before /api/v1/users/{name}', () => {
  test('a UUID takes the typed route', async () => {
    const r = await gw.request(`GET /api/v1/users/${UUID}`)
    expect(r.status, r.explain()).toBe(200)
    expect(r.trace.route?.id).toBe('GET /api/v1/users/{uid:uuid}')
    expect(users.last!.path).toBe(`/users/${UUID}`)
  })

  test('anything else is a name', async () => {
    const r = await gw.request('GET /api/v1/users/ada')
    expect(r.status, r.explain()).toBe(200)
    expect(r.trace.route?.id).toBe('GET,HEAD /api/v1/users/{name}')
    expect(users.last!.path).toBe('/users/by-name/ada')
  })

  test('the uuid route is GET only, so HEAD of a UUID goes to the name route', async () => {
    const r = await gw.request(`HEAD /api/v1/users/${UUID}`)
    expect(r.status, r.explain()).toBe(200)
    expect(users.last!.path).toBe(`/users/by-name/${UUID}`)
  })
})

describe('GET,HEAD /api/v1/users/{name}', () => {
  test('locale is renamed lang; method, path, host and User-Agent go along; Cookie does not', async () => {
    const r = await gw.request('GET /api/v1/users/ada?locale=fr&x=1', {
      host: 'api.example.com',
      headers: { Cookie: 'a=b', 'User-Agent': 'curl/8.5' },
    })
    expect(r.status, r.explain()).toBe(200)
    const seen = users.last!
    const url = new URL(seen.path, 'http://upstream')
    expect(url.pathname).toBe('/users/by-name/ada')
    expect(url.searchParams.get('lang')).toBe('fr')
    expect(url.searchParams.has('locale')).toBe(false)
    expect(url.searchParams.get('x')).toBe('1')
    expect(seen.headers['x-original-method']).toBe('GET')
    expect(seen.headers['x-original-path']).toBe('/api/v1/users/ada')
    expect(seen.headers['x-original-host']).toBe('api.example.com')
    expect(seen.headers['x-client-agent']).toBe('curl/8.5')
    expect(seen.headers.cookie).toBeUndefined()
  })

  test('without a locale, no lang', async () => {
    await gw.request('GET /api/v1/users/ada')
    expect(users.last!.path).toBe('/users/by-name/ada')
  })
})

describe('GET /legacy/user/{uid}/info (deprecated, sunset 2027-06-30)', () => {
  test.each(['GET', 'POST', 'DELETE'])('%s maps to /user/users/{uid}/user-info with Deprecation and Sunset', async (method) => {
    const r = await gw.request(`${method} /legacy/user/7/info`)
    expect(r.status, r.explain()).toBe(200)
    expect(users.last).toMatchObject({ method, path: '/user/users/7/user-info' })
    expect(r.headers.get('deprecation')).toBe('true')
    expect(r.headers.get('sunset')).toBe('Wed, 30 Jun 2027 00:00:00 GMT')
  })
})

describe('GET /api/v0/users/{name} (deprecated since 2026-01-01, sunset 2026-12-31)', () => {
  test('strips /api/v0 and links the successor', async () => {
    const r = await gw.request('GET /api/v0/users/ada')
    expect(r.status, r.explain()).toBe(200)
    expect(users.last!.path).toBe('/users/ada')
    expect(r.headers.get('deprecation')).toBe(`@${Date.parse('2026-01-01T00:00:00Z') / 1000}`)
    expect(r.headers.get('sunset')).toBe('Thu, 31 Dec 2026 00:00:00 GMT')
    expect(r.headers.get('link')).toBe('</api/v1/users/ada>; rel="successor-version"')
  })
})

describe('GET /whoami host localhost', () => {
  test('answers from the gateway for Host localhost, any port', async () => {
    for (const host of ['localhost', 'localhost:8080']) {
      const r = await gw.request('GET /whoami', { host, ip: '127.0.0.5' })
      expect(r.status, r.explain()).toBe(200)
      const text = await r.text()
      expect(text).toStartWith('you are 127.0.0.5, request ')
      expect(text).toBe(`you are 127.0.0.5, request ${r.headers.get('x-request-id')}\n`)
    }
    expect(users.requests).toHaveLength(0)
  })

  test('another Host matches no route', async () => {
    const r = await gw.request('GET /whoami', { host: '127.0.0.1:8080' })
    expect(r.status, r.explain()).toBe(404)
    expect(r.headers.get('gateway-error')).toBe('no_route')
    expect(r.trace.reason).toContain('127.0.0.1:8080')
  })
})
