// scripts.policy: TypeScript scripts on /api/v1/scripted/me. An access script lets only apps
// with a partner code in, a rewrite script turns the app into headers, a plan and a call count,
// and a response script masks personal data in JSON answers. (The log script runs once a
// serving gateway has delivered the answer: the kit shows it as not run.)
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { loadGateway, type UpstreamHandler } from 'portcullis/testing'

// Like the demo backend: the answer echoes what the upstream received.
const echo: UpstreamHandler = (req) => {
  const url = new URL(req.url)
  return Response.json({ path: url.pathname, query: url.search.slice(1), headers: Object.fromEntries(req.headers) })
}
const gw = await loadGateway(import.meta.dir, { upstreams: { users: echo } })
afterAll(() => gw.close())
const users = gw.upstream('users')
beforeEach(() => {
  users.clear()
  users.respond(echo)
})

describe('GET /api/v1/scripted/me', () => {
  test('partner_a: its meta as headers, its tier as ?plan=, its calls counted', async () => {
    const r = await gw.request('GET /api/v1/scripted/me', { as: 'partner_a' })
    expect(r.status, r.explain()).toBe(200)
    const seen = users.last!
    expect(seen.path).toBe('/api/v1/scripted/me?plan=gold')
    expect(seen.headers['x-partner-code']).toBe('PA-001')
    // A kit gateway starts with an empty store: this is the first call.
    expect(seen.headers['x-partner-calls-today']).toBe('1')
    await gw.request('GET /api/v1/scripted/me', { as: 'partner_a' })
    await gw.request('GET /api/v1/scripted/me', { as: 'partner_a' })
    expect(users.last!.headers['x-partner-calls-today']).toBe('3')
  })

  test('the answer has the client address masked, marked X-Masked', async () => {
    const r = await gw.request('GET /api/v1/scripted/me', { as: 'partner_a', ip: '203.0.113.7' })
    expect(r.status, r.explain()).toBe(200)
    expect(r.headers.get('x-masked')).toBe('personal-data')
    const body = await r.json()
    // The upstream got the address; the partner sees only its network part.
    expect(users.last!.headers['x-real-ip']).toBe('203.0.113.7')
    expect(body.headers['x-real-ip']).toBe('203.0.x.x')
    expect(body.headers['x-forwarded-for']).toBe('203.0.x.x')
    expect(body.headers['x-partner-code']).toBe('PA-001')
  })

  test('email, phone and iban fields are masked at any depth', async () => {
    users.respond(() =>
      Response.json({
        name: 'Ada',
        email: 'ada@example.com',
        accounts: [{ iban: 'DE89370400440532013000', phone: '+44 20 7946 0958' }],
        phone: '1234',
      }),
    )
    const r = await gw.request('GET /api/v1/scripted/me', { as: 'partner_a' })
    expect(await r.json()).toEqual({
      name: 'Ada',
      email: '***@example.com',
      accounts: [{ iban: '******************3000', phone: '************0958' }],
      phone: '****',
    })
  })

  test('an answer that is not JSON goes through untouched', async () => {
    users.respond(() => new Response('email: ada@example.com', { headers: { 'content-type': 'text/plain' } }))
    const r = await gw.request('GET /api/v1/scripted/me', { as: 'partner_a' })
    expect(r.status, r.explain()).toBe(200)
    expect(await r.text()).toBe('email: ada@example.com')
    expect(r.headers.has('x-masked')).toBe(false)
  })

  test('the response script reads at most 1mb: a longer JSON answer is 502', async () => {
    users.respond(() => new Response(JSON.stringify({ blob: 'x'.repeat(1024 * 1024) }), { headers: { 'content-type': 'application/json' } }))
    const r = await gw.request('GET /api/v1/scripted/me', { as: 'partner_a' })
    expect(r.status, r.explain()).toBe(502)
  })

  test('partner_b has no partner code: 403 from the access script, the upstream never asked', async () => {
    const r = await gw.request('GET /api/v1/scripted/me', { as: 'partner_b' })
    expect(r.status, r.explain()).toBe(403)
    expect(r.headers.get('gateway-error')).toBe('forbidden')
    const refused = r.trace.steps.find((s) => s.outcome === 'refused')!
    expect(refused.at).toEndWith('policies/scripts.policy:11')
    expect(refused.detail).toContain('partners with a partner code')
    expect(users.requests).toHaveLength(0)
  })

  test('no key: 401 before any script runs', async () => {
    const r = await gw.request('GET /api/v1/scripted/me')
    expect(r.status, r.explain()).toBe(401)
    expect(r.trace.steps.find((s) => s.outcome === 'refused')?.directive).toBe('require key')
  })

  test('the log script is the last step, run by a serving gateway after the answer', async () => {
    const r = await gw.request('GET /api/v1/scripted/me', { as: 'partner_a' })
    expect(r.trace.notReached.map((s) => [s.stage, s.at.replace(/.*\//, '')])).toContainEqual(['log', 'scripts.policy:14'])
  })
})
