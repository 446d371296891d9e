// sessions.policy: logins the gateway runs itself. The verifier (POST /internal/verify-login on
// users) is a mock that accepts ada / lovelace and grace / hopper, as the demo backend does.
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { loadGateway, type UpstreamHandler } from 'portcullis/testing'

const PEOPLE: Record<string, { password: string; info: Record<string, unknown> }> = {
  ada: { password: 'lovelace', info: { id: 'u-1001', username: 'ada', name: 'Ada Lovelace', roles: ['admin'] } },
  grace: { password: 'hopper', info: { id: 'u-1002', username: 'grace', name: 'Grace Hopper', roles: [] } },
}
const users: UpstreamHandler = async (req) => {
  const url = new URL(req.url)
  if (url.pathname !== '/internal/verify-login') return Response.json({ path: url.pathname })
  const type = req.headers.get('content-type') ?? ''
  const c = (type.includes('json') ? await req.json() : Object.fromEntries(new URLSearchParams(await req.text()))) as Record<string, string>
  const who = PEOPLE[c.username ?? '']
  return who && who.password === c.password ? Response.json(who.info) : new Response('no', { status: 401 })
}

const gw = await loadGateway(import.meta.dir, { upstreams: { users } })
afterAll(() => gw.close())
const upstream = gw.upstream('users')
beforeEach(() => upstream.clear())

const ADA = { username: 'ada', password: 'lovelace' }
const refresh = (token: string) => gw.request('POST /auth/refresh', { body: { refresh_token: token } })
const alive = (token: string) => gw.request('GET /auth/alive', { session: token })

describe('POST /auth/login', () => {
  test('the verifier gets the credentials as sent; the client gets tokens, no-store', async () => {
    const { accessToken, refreshToken, response } = await gw.login(ADA)
    expect(accessToken).toMatch(/^[A-Za-z0-9_-]{64}$/)
    expect(refreshToken).toMatch(/^[A-Za-z0-9_-]{64}$/)
    expect(response.headers.get('cache-control')).toBe('no-store')
    const verify = upstream.last!
    expect(verify).toMatchObject({ method: 'POST', path: '/internal/verify-login' })
    expect(JSON.parse(verify.body)).toEqual(ADA)
    expect(verify.headers.authorization).toBeUndefined()
  })

  test('the answer says the lifetimes: 15 minutes and 7 days', async () => {
    const r = await gw.request('POST /auth/login', { body: ADA })
    expect(r.status, r.explain()).toBe(200)
    const body = await r.json()
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 900, refresh_expires_in: 604800 })
    expect(body.user_info).toEqual(PEOPLE.ada!.info)
  })

  test('a form works the same', async () => {
    const r = await gw.request('POST /auth/login', {
      body: 'username=grace&password=hopper',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    })
    expect(r.status, r.explain()).toBe(200)
    expect((await r.json()).user_info.id).toBe('u-1002')
  })

  test('wrong credentials: 401 unauthenticated', async () => {
    const r = await gw.request('POST /auth/login', { body: { username: 'ada', password: 'nope' } })
    expect(r.status, r.explain()).toBe(401)
    expect(r.headers.get('gateway-error')).toBe('unauthenticated')
  })
})

describe('GET /api/v1/profile (require session)', () => {
  test('the upstream gets the user as base64 JSON and its id', async () => {
    const { accessToken } = await gw.login(ADA)
    const r = await gw.request('GET /api/v1/profile', { session: accessToken })
    expect(r.status, r.explain()).toBe(200)
    const seen = upstream.last!
    expect(seen.path).toBe('/users/by-id/u-1001')
    expect(seen.headers['x-user-id']).toBe('u-1001')
    expect(JSON.parse(Buffer.from(seen.headers['x-user-json']!, 'base64').toString())).toEqual(PEOPLE.ada!.info)
  })

  test('the token in ?access_token= works too, and is removed', async () => {
    const { accessToken } = await gw.login(ADA)
    const r = await gw.request('GET /api/v1/profile', { query: { access_token: accessToken, v: 2 } })
    expect(r.status, r.explain()).toBe(200)
    expect(upstream.last!.path).toBe('/users/by-id/u-1001?v=2')
  })

  test("a client's own X-User-Json never gets through", async () => {
    const { accessToken } = await gw.login(ADA)
    const forged = Buffer.from(JSON.stringify({ id: 'root' })).toString('base64')
    await gw.request('GET /api/v1/profile', { session: accessToken, headers: { 'X-User-Json': forged } })
    expect(upstream.last!.headers['x-user-json']).not.toBe(forged)
  })

  test('without a token: 401 with WWW-Authenticate: Bearer; a bad one: invalid_token', async () => {
    const none = await gw.request('GET /api/v1/profile')
    expect(none.status, none.explain()).toBe(401)
    expect(none.headers.get('www-authenticate')).toStartWith('Bearer')
    const bad = await gw.request('GET /api/v1/profile', { session: 'x'.repeat(64) })
    expect(bad.status, bad.explain()).toBe(401)
    expect(bad.headers.get('www-authenticate')).toContain('invalid_token')
    expect(upstream.requests).toHaveLength(0)
  })

  test('a refresh token is no access token', async () => {
    const { refreshToken } = await gw.login(ADA)
    expect((await gw.request('GET /api/v1/profile', { session: refreshToken })).status).toBe(401)
  })

  test('an access token lives 15 minutes', async () => {
    const { accessToken } = await gw.login(ADA)
    gw.clock.advance('14m')
    expect((await gw.request('GET /api/v1/profile', { session: accessToken })).status).toBe(200)
    gw.clock.advance('1m')
    const r = await gw.request('GET /api/v1/profile', { session: accessToken })
    expect(r.status, r.explain()).toBe(401)
  })
})

describe('GET /auth/alive', () => {
  test('how long the token has left, in whole seconds rounded up', async () => {
    const { accessToken } = await gw.login(ADA)
    expect(await (await alive(accessToken)).json()).toEqual({ active: true, expires_in: 900 })
    gw.clock.advance(100_500)
    expect(await (await alive(accessToken)).json()).toEqual({ active: true, expires_in: 800 })
    gw.clock.advance('15m')
    expect((await alive(accessToken)).status).toBe(401)
  })
})

describe('POST /auth/refresh', () => {
  test('rotates both tokens; the old access token lives on until its own expiry', async () => {
    const first = await gw.login(ADA)
    gw.clock.advance('20m')
    expect((await alive(first.accessToken)).status).toBe(401)
    const r = await refresh(first.refreshToken)
    expect(r.status, r.explain()).toBe(200)
    const next = await r.json()
    expect(next.access_token).not.toBe(first.accessToken)
    expect(next.refresh_token).not.toBe(first.refreshToken)
    expect((await gw.request('GET /api/v1/profile', { session: next.access_token })).status).toBe(200)
  })

  test('a refresh token works once: reusing it revokes the whole login', async () => {
    const first = await gw.login(ADA)
    const next = await (await refresh(first.refreshToken)).json()
    const reuse = await refresh(first.refreshToken)
    expect(reuse.status, reuse.explain()).toBe(401)
    expect((await alive(next.access_token)).status).toBe(401)
    expect((await refresh(next.refresh_token)).status).toBe(401)
  })

  test('a refresh token lives 7 days', async () => {
    const { refreshToken } = await gw.login(ADA)
    gw.clock.advance('7d')
    expect((await refresh(refreshToken)).status).toBe(401)
  })

  test('a body without refresh_token: 400 bad_request', async () => {
    const r = await gw.request('POST /auth/refresh', { body: { token: 'x' } })
    expect(r.status, r.explain()).toBe(400)
    expect(r.headers.get('gateway-error')).toBe('bad_request')
  })
})

describe('POST /auth/logout', () => {
  test('ends the login: its access and refresh tokens stop working', async () => {
    const { accessToken, refreshToken } = await gw.login(ADA)
    const r = await gw.request('POST /auth/logout', { session: accessToken })
    expect(r.status, r.explain()).toBe(204)
    expect((await alive(accessToken)).status).toBe(401)
    expect((await refresh(refreshToken)).status).toBe(401)
    expect((await gw.request('POST /auth/logout', { session: accessToken })).status).toBe(401)
  })
})

describe('single-sign-on', () => {
  test("a new login revokes the user's older ones, not other users'", async () => {
    const older = await gw.login(ADA)
    const grace = await gw.login({ username: 'grace', password: 'hopper' })
    const newer = await gw.login(ADA)
    expect((await alive(older.accessToken)).status).toBe(401)
    expect((await refresh(older.refreshToken)).status).toBe(401)
    expect((await alive(newer.accessToken)).status).toBe(200)
    expect((await alive(grace.accessToken)).status).toBe(200)
  })
})
