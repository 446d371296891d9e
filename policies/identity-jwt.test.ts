// identity-jwt.policy: JWT bearer tokens from the demo issuer, scopes and claims, and the app
// `mobile` named by the token's azp. The kit mints tokens with `jwt: { claims }`; some tests mint
// them with the demo issuer's private key, as the policy's comment shows.
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { importPKCS8, SignJWT, type JWTPayload } from 'jose'
import { loadGateway } from 'portcullis/testing'

const gw = await loadGateway(import.meta.dir, { upstreams: { users: 'record', orders: 'record' } })
afterAll(() => gw.close())
const users = gw.upstream('users')
const orders = gw.upstream('orders')
beforeEach(() => {
  users.clear()
  orders.clear()
})

const ISSUER = 'https://auth.portcullis.test'
const AUDIENCE = 'portcullis-demo'
const demoKey = readFileSync(join(import.meta.dir, 'demo-secrets/jwt-issuer.private.pem'), 'utf8')

// A token of the demo issuer, dated by the kit's clock.
async function demoToken(claims: JWTPayload, alg = 'RS256', lifetime = 3600): Promise<string> {
  const now = Math.floor(gw.clock.now() / 1000)
  return new SignJWT({ iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + lifetime, ...claims })
    .setProtectedHeader({ alg })
    .sign(await importPKCS8(demoKey, alg))
}
const bearer = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } })

describe('GET /api/v1/me (any valid token with the profile scope)', () => {
  test('the user goes upstream as X-User-Id and in the path', async () => {
    const r = await gw.request('GET /api/v1/me', { jwt: { claims: { sub: 'user-42', scope: 'profile' } } })
    expect(r.status, r.explain()).toBe(200)
    expect(users.last!.path).toBe('/users/by-id/user-42')
    expect(users.last!.headers['x-user-id']).toBe('user-42')
  })

  test('a token of the demo issuer, as the policy comment mints it (RS256)', async () => {
    const token = await demoToken({ sub: 'user-42', azp: 'mobile-client', scope: 'profile orders:refund', role: ['support'] })
    const r = await gw.request('GET /api/v1/me', bearer(token))
    expect(r.status, r.explain()).toBe(200)
    expect(users.last!.headers['x-user-id']).toBe('user-42')
    // azp names the app mobile.
    expect(users.last!.headers['x-consumer']).toBe('mobile')
  })

  test('only RS256: the same key signing PS256 is refused', async () => {
    const r = await gw.request('GET /api/v1/me', bearer(await demoToken({ sub: 'user-42', scope: 'profile' }, 'PS256')))
    expect(r.status, r.explain()).toBe(401)
    expect(r.headers.get('gateway-error')).toBe('unauthenticated')
  })

  test('no token: 401 with WWW-Authenticate: Bearer', async () => {
    const r = await gw.request('GET /api/v1/me')
    expect(r.status, r.explain()).toBe(401)
    expect(r.headers.get('www-authenticate')).toStartWith('Bearer')
    expect(users.requests).toHaveLength(0)
  })

  test('another issuer or audience: 401', async () => {
    for (const claims of [{ iss: 'https://evil.example' }, { aud: 'someone-else' }]) {
      const r = await gw.request('GET /api/v1/me', { jwt: { claims: { sub: 'user-42', scope: 'profile', ...claims } } })
      expect(r.status, r.explain()).toBe(401)
    }
  })

  test('without the profile scope: 403 insufficient_scope', async () => {
    const r = await gw.request('GET /api/v1/me', { jwt: { claims: { sub: 'user-42', scope: 'orders:refund' } } })
    expect(r.status, r.explain()).toBe(403)
    expect(r.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="profile"')
    expect(r.trace.steps.find((s) => s.outcome === 'refused')?.directive).toBe('require scope')
  })

  test('an expired token is accepted for 30s more (leeway), then refused', async () => {
    const exp = Math.floor(gw.clock.now() / 1000) + 60
    const token = await demoToken({ sub: 'user-42', scope: 'profile', exp })
    const start = gw.clock.now()
    try {
      gw.clock.set((exp + 29) * 1000)
      const late = await gw.request('GET /api/v1/me', bearer(token))
      expect(late.status, late.explain()).toBe(200)
      gw.clock.set((exp + 31) * 1000)
      const expired = await gw.request('GET /api/v1/me', bearer(token))
      expect(expired.status, expired.explain()).toBe(401)
    } finally {
      gw.clock.set(start)
    }
  })
})

describe('POST /api/v1/orders/{id:int}/refunds (scope orders:refund, role support, app mobile by azp)', () => {
  const refund = { azp: 'mobile-client', sub: 'agent-7', scope: 'profile orders:refund', role: ['support'] }

  test('a support agent of the mobile app refunds; the upstream learns who', async () => {
    const r = await gw.request('POST /api/v1/orders/42/refunds', { jwt: { claims: refund }, body: { amount: '12.50' } })
    expect(r.status, r.explain()).toBe(200)
    const seen = orders.last!
    expect(seen.path).toBe('/api/v1/orders/42/refunds')
    expect(seen.headers['x-support-agent']).toBe('agent-7')
    expect(seen.headers['x-consumer']).toBe('mobile')
    expect(JSON.parse(seen.body)).toEqual({ amount: '12.50' })
  })

  test('the demo issuer token from the policy comment refunds too', async () => {
    const r = await gw.request('POST /api/v1/orders/42/refunds', bearer(await demoToken({ ...refund, sub: 'user-42' })))
    expect(r.status, r.explain()).toBe(200)
  })

  test('without orders:refund: 403 insufficient_scope', async () => {
    const r = await gw.request('POST /api/v1/orders/42/refunds', { jwt: { claims: { ...refund, scope: 'profile' } } })
    expect(r.status, r.explain()).toBe(403)
    expect(r.headers.get('www-authenticate')).toContain('scope="orders:refund"')
  })

  test('without the support role: 403 forbidden', async () => {
    for (const role of [['sales'], undefined]) {
      const r = await gw.request('POST /api/v1/orders/42/refunds', { jwt: { claims: { ...refund, role } } })
      expect(r.status, r.explain()).toBe(403)
      expect(r.headers.get('gateway-error')).toBe('forbidden')
      expect(r.trace.steps.find((s) => s.outcome === 'refused')?.directive).toBe('require claim')
    }
  })

  test('a token for another client is not the app mobile: 403 by allow app', async () => {
    const r = await gw.request('POST /api/v1/orders/42/refunds', { jwt: { claims: { ...refund, azp: 'web-client' } } })
    expect(r.status, r.explain()).toBe(403)
    expect(r.trace.steps.find((s) => s.outcome === 'refused')?.directive).toBe('allow app')
  })

  test('only azp counts here: a token whose sub is mobile-client, without azp, is refused', async () => {
    const r = await gw.request('POST /api/v1/orders/42/refunds', { jwt: { claims: { ...refund, azp: undefined, sub: 'mobile-client' } } })
    expect(r.status, r.explain()).toBe(403)
  })

  test('as: mobile presents a token from the app, which lacks the scope: 403', async () => {
    const r = await gw.request('POST /api/v1/orders/42/refunds', { as: 'mobile' })
    expect(r.status, r.explain()).toBe(403)
    expect(r.headers.get('www-authenticate')).toContain('insufficient_scope')
    expect(orders.requests).toHaveLength(0)
  })

  test('an id that is not an int matches no route', async () => {
    const r = await gw.request('POST /api/v1/orders/abc/refunds', { jwt: { claims: refund } })
    expect(r.status, r.explain()).toBe(404)
  })
})
