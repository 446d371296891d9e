// apps.policy: who may call. API keys in a header or the query, groups and a single app,
// key rotation windows, an app-level address allow-list, and client certificates.
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { loadGateway } from 'portcullis/testing'

const gw = await loadGateway(import.meta.dir, { upstreams: { users: 'record' } })
afterAll(() => gw.close())
const users = gw.upstream('users')
beforeEach(() => users.clear())

describe('GET /api/v1/partners/me (require key, groups partners and resellers)', () => {
  test('partner_a (partners) reaches /partners/partner_a as itself, with its partner code and not its key', async () => {
    const r = await gw.request('GET /api/v1/partners/me', { as: 'partner_a' })
    expect(r.status, r.explain()).toBe(200)
    const seen = users.last!
    expect(seen.path).toBe('/partners/partner_a')
    expect(seen.headers['x-consumer']).toBe('partner_a')
    expect(seen.headers['x-partner-code']).toBe('PA-001')
    expect(seen.headers['x-api-key']).toBeUndefined()
  })

  test('the key the README shows is partner_a', async () => {
    const r = await gw.request('GET /api/v1/partners/me', { headers: { 'X-Api-Key': 'demo-api-key-partner-a-0123456789' } })
    expect(r.status, r.explain()).toBe(200)
    expect(users.last!.headers['x-consumer']).toBe('partner_a')
  })

  test('partner_b (resellers) and partner_enc (partners) are admitted too', async () => {
    for (const app of ['partner_b', 'partner_enc']) {
      const r = await gw.request('GET /api/v1/partners/me', { as: app })
      expect(r.status, r.explain()).toBe(200)
      expect(users.last!.path).toBe(`/partners/${app}`)
      expect(users.last!.headers['x-consumer']).toBe(app)
    }
    // partner_b has no partner code: no header rather than an empty one.
    await gw.request('GET /api/v1/partners/me', { as: 'partner_b' })
    expect(users.last!.headers['x-partner-code']).toBeUndefined()
  })

  test('no key: 401 unauthenticated with WWW-Authenticate: ApiKey', async () => {
    const r = await gw.request('GET /api/v1/partners/me')
    expect(r.status, r.explain()).toBe(401)
    expect(r.headers.get('gateway-error')).toBe('unauthenticated')
    expect(r.headers.get('www-authenticate')).toStartWith('ApiKey')
    expect(r.trace.steps.find((s) => s.outcome === 'refused')?.directive).toBe('require key')
    expect(users.requests).toHaveLength(0)
  })

  test('a wrong key: 401', async () => {
    const r = await gw.request('GET /api/v1/partners/me', { apiKey: 'demo-api-key-partner-a-0123456780' })
    expect(r.status, r.explain()).toBe(401)
    expect(r.headers.get('gateway-error')).toBe('unauthenticated')
  })

  test('a key in the query does not count on this route', async () => {
    const r = await gw.request('GET /api/v1/partners/me', { query: { api_key: 'demo-api-key-partner-a-0123456789' } })
    expect(r.status, r.explain()).toBe(401)
  })
})

describe('partner_b: key rotation and its own address allow-list', () => {
  test('its key works before, within and after the overlap of its two windows', async () => {
    const start = gw.clock.now()
    try {
      for (const at of ['2099-05-31T00:00:00Z', '2099-09-01T00:00:00Z', '2100-01-01T00:00:00Z']) {
        gw.clock.set(at)
        const r = await gw.request('GET /api/v1/partners/me', { as: 'partner_b' })
        expect(r.status, `${at}\n${r.explain()}`).toBe(200)
      }
    } finally {
      gw.clock.set(start)
    }
  })

  test('partner_b only from loopback: 403 forbidden from elsewhere', async () => {
    expect((await gw.request('GET /api/v1/partners/me', { as: 'partner_b', ip: '::1' })).status).toBe(200)
    const r = await gw.request('GET /api/v1/partners/me', { as: 'partner_b', ip: '203.0.113.9' })
    expect(r.status, r.explain()).toBe(403)
    expect(r.headers.get('gateway-error')).toBe('forbidden')
    expect(users.requests).toHaveLength(1)
  })

  test('partner_a has no such limit', async () => {
    const r = await gw.request('GET /api/v1/partners/me', { as: 'partner_a', ip: '203.0.113.9' })
    expect(r.status, r.explain()).toBe(200)
  })
})

describe('GET /api/v1/reports (key in the query, partner_a only)', () => {
  test('partner_a with ?api_key= reaches /reports, the key removed', async () => {
    const r = await gw.request('GET /api/v1/reports?api_key=demo-api-key-partner-a-0123456789&month=2027-01')
    expect(r.status, r.explain()).toBe(200)
    expect(users.last!.path).toBe('/api/v1/reports?month=2027-01')
    expect(users.last!.headers['x-consumer']).toBe('partner_a')
  })

  test('partner_b is known but not allowed: 403 forbidden', async () => {
    const r = await gw.request('GET /api/v1/reports', { as: 'partner_b' })
    expect(r.status, r.explain()).toBe(403)
    expect(r.headers.get('gateway-error')).toBe('forbidden')
    expect(r.trace.steps.find((s) => s.outcome === 'refused')?.directive).toBe('allow app')
    expect(users.requests).toHaveLength(0)
  })

  test('the key in the X-Api-Key header does not count here: 401', async () => {
    const r = await gw.request('GET /api/v1/reports', { headers: { 'X-Api-Key': 'demo-api-key-partner-a-0123456789' } })
    expect(r.status, r.explain()).toBe(401)
  })
})

describe('GET /api/v1/partners/cert-check (require mtls)', () => {
  test("partner_a's certificate identifies partner_a", async () => {
    const r = await gw.request('GET /api/v1/partners/cert-check', { cert: 'partner_a' })
    expect(r.status, r.explain()).toBe(200)
    expect(users.last!.headers['x-consumer']).toBe('partner_a')
  })

  test('the fingerprint apps.policy lists is the one that counts', async () => {
    const fingerprint = '5D:3F:0B:8E:51:6A:2C:97:14:E0:C3:7B:A9:42:6D:18:F1:03:8C:B5:27:64:DA:0E:93:7F:4C:21:B8:E6:05:AA'
    expect((await gw.request('GET /api/v1/partners/cert-check', { cert: fingerprint })).status).toBe(200)
    const other = await gw.request('GET /api/v1/partners/cert-check', { cert: fingerprint.replace(/AA$/, 'AB') })
    expect(other.status, other.explain()).toBe(401)
  })

  test('without a certificate: 401, an API key does not replace it', async () => {
    expect((await gw.request('GET /api/v1/partners/cert-check')).status).toBe(401)
    const r = await gw.request('GET /api/v1/partners/cert-check', { apiKey: 'partner_a' })
    expect(r.status, r.explain()).toBe(401)
    expect(r.headers.get('gateway-error')).toBe('unauthenticated')
    expect(users.requests).toHaveLength(0)
  })
})
