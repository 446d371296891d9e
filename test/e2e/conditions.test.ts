// `when CONDITION { … }`: guarded directives run at their stage position only when the
// condition holds; a terminal inside a `when` answers the requests that match it; conditions
// on absent values are false (`!=` and `absent` their negations). Real gateway, real upstreams.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { echoOf, policyDir, removeDir, runCli, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem, type Echo } from '../helpers/http.ts'

const KEYS = { KEY_PARTNER: 'kp-0123456789abcdef', KEY_STAFF: 'ks-0123456789abcdef' }

let gw: RunningGateway
let dir: string
const ups: Upstream[] = []
// What each upstream saw, by name.
const seen: Record<string, Echo[]> = { stable: [], beta: [] }

function named(name: string): Upstream {
  const up = startUpstream(async (req) => {
    const e = await echoOf(req)
    seen[name]!.push(e)
    return Response.json({ upstream: name, headers: e.headers, path: e.path })
  })
  ups.push(up)
  return up
}

const POLICY = (stable: string, beta: string) => `
upstream stable { target ${stable} }
upstream beta { target ${beta} }

app partner { api-key env KEY_PARTNER; group partners; meta tier_code "P1" }
app staff { api-key env KEY_STAFF; group internal }

defaults {
  when request.header.X-Trace present { set response header X-Traced = "yes" }
}

match GET,POST,DELETE /orders/{id:int} {
  when request.header.X-Env = "beta", "canary" {
    set header X-Routed = "beta"
    proxy beta
  }
  when request.method = "DELETE" { allow ip 10.0.0.0/8 }
  when request.header.X-Tenant != "acme" { set response header X-Not-Acme = "1" }
  when request.query.debug = "1" and request.header.X-Debug-Key present { set response header X-Debug = "on" }
  when request.header.User-Agent matches "^BadBot/" or request.query.bot present { respond 403 text "no bots" }
  when param.id = "42" { set header X-Answer = "yes" }
  proxy stable
}

match GET /ip {
  when request.ip in 127.0.0.0/8 { set response header X-Local = "yes" }
  when request.ip not in 127.0.0.0/8 { set response header X-Remote = "yes" }
  when request.ip in 10.0.0.0/8, 192.168.0.0/16 { respond 403 }
  respond 200 text "ip"
}

match GET /me {
  require key
  when app.name = "partner" { set header X-Partner-Tier = app.meta.tier_code }
  when app.group = "internal" {
    when request.header.X-Admin = "1" { respond 200 text "staff admin" }
    respond 200 text "staff"
  }
  proxy stable
}

match GET,POST /methods {
  when request.method = "GET" { respond 200 text "read" }
  when request.method = "POST" { respond 201 text "created" }
}

match GET /cached/{n} {
  when request.header.X-Cache = "yes" { cache response 30s }
  proxy stable
}
`

beforeAll(async () => {
  const stable = named('stable')
  const beta = named('beta')
  dir = policyDir({ 'main.policy': POLICY(stable.url, beta.url) })
  gw = await startGateway(dir, [], KEYS)
})

afterAll(async () => {
  await gw?.stop()
  for (const u of ups) u.stop()
  removeDir(dir)
})

const json = async (res: Response) => (await res.json()) as { upstream: string; headers: Record<string, string>; path: string }

describe('a terminal inside a when', () => {
  test('answers the requests that match; the others get the route terminal', async () => {
    const beta = await json(await gw.fetch('/orders/1', { headers: { 'X-Env': 'beta' } }))
    expect(beta.upstream).toBe('beta')
    expect(beta.headers['x-routed']).toBe('beta')
    expect((await json(await gw.fetch('/orders/1', { headers: { 'X-Env': 'canary' } }))).upstream).toBe('beta')
    const others: Record<string, string>[] = [{}, { 'X-Env': 'prod' }, { 'X-Env': 'BETA' }, { 'X-Env': '' }]
    for (const headers of others) {
      const r = await json(await gw.fetch('/orders/1', { headers }))
      expect(r.upstream).toBe('stable')
      // The guarded rewrite did not run; a client cannot send the header it sets either.
      expect(r.headers['x-routed']).toBeUndefined()
    }
    const sneaky = await json(await gw.fetch('/orders/1', { headers: { 'X-Routed': 'beta' } }))
    expect(sneaky.headers['x-routed']).toBeUndefined()
  })

  test('`or`: either test selects the respond', async () => {
    const ua = await gw.fetch('/orders/1', { headers: { 'User-Agent': 'BadBot/2.0' } })
    expect(ua.status).toBe(403)
    expect(await ua.text()).toBe('no bots')
    expect((await gw.fetch('/orders/1?bot')).status).toBe(403)
    expect((await gw.fetch('/orders/1', { headers: { 'User-Agent': 'GoodBot/1.0 BadBot/' } })).status).toBe(200)
  })

  test('every method of a route answered by when blocks: no other terminal needed', async () => {
    const get = await gw.fetch('/methods')
    expect([get.status, await get.text()]).toEqual([200, 'read'])
    const post = await gw.fetch('/methods', { method: 'POST' })
    expect([post.status, await post.text()]).toEqual([201, 'created'])
    await expectProblem(await gw.fetch('/methods', { method: 'PUT' }), 405, 'method_not_allowed')
  })
})

describe('guarded directives run at their stage position', () => {
  test('access: a guarded allow ip refuses only the requests that match', async () => {
    await expectProblem(await gw.fetch('/orders/7', { method: 'DELETE' }), 403, 'forbidden')
    expect((await gw.fetch('/orders/7', { method: 'POST', body: 'x' })).status).toBe(200)
    expect((await gw.fetch('/orders/7')).status).toBe(200)
  })

  test('rewrite: a guarded set header, by a typed capture', async () => {
    expect((await json(await gw.fetch('/orders/42'))).headers['x-answer']).toBe('yes')
    expect((await json(await gw.fetch('/orders/420'))).headers['x-answer']).toBeUndefined()
  })

  test('response: `!=` holds on an absent header, `and` needs both tests', async () => {
    expect((await gw.fetch('/orders/1')).headers.get('x-not-acme')).toBe('1')
    expect((await gw.fetch('/orders/1', { headers: { 'X-Tenant': 'globex' } })).headers.get('x-not-acme')).toBe('1')
    expect((await gw.fetch('/orders/1', { headers: { 'X-Tenant': 'acme' } })).headers.get('x-not-acme')).toBeNull()
    expect((await gw.fetch('/orders/1?debug=1', { headers: { 'X-Debug-Key': 'k' } })).headers.get('x-debug')).toBe('on')
    expect((await gw.fetch('/orders/1?debug=1')).headers.get('x-debug')).toBeNull()
    expect((await gw.fetch('/orders/1?debug=2', { headers: { 'X-Debug-Key': 'k' } })).headers.get('x-debug')).toBeNull()
  })

  test('a when in defaults applies to every route, gateway errors included', async () => {
    expect((await gw.fetch('/ip', { headers: { 'X-Trace': '1' } })).headers.get('x-traced')).toBe('yes')
    expect((await gw.fetch('/ip')).headers.get('x-traced')).toBeNull()
    const refused = await gw.fetch('/orders/7', { method: 'DELETE', headers: { 'X-Trace': '1' } })
    expect(refused.headers.get('x-traced')).toBe('yes')
    await expectProblem(refused, 403, 'forbidden')
  })

  test('request.ip in / not in CIDR ranges', async () => {
    const res = await gw.fetch('/ip')
    expect(res.status).toBe(200)
    expect(res.headers.get('x-local')).toBe('yes')
    expect(res.headers.get('x-remote')).toBeNull()
  })

  test('a guarded body step (cache response) looks up and stores only when the condition holds', async () => {
    const before = seen.stable!.filter((e) => e.path.startsWith('/cached/')).length
    for (let i = 0; i < 3; i++) expect((await gw.fetch('/cached/a', { headers: { 'X-Cache': 'yes' } })).status).toBe(200)
    const cachedHits = seen.stable!.filter((e) => e.path === '/cached/a').length
    expect(cachedHits).toBe(1)
    for (let i = 0; i < 3; i++) expect((await gw.fetch('/cached/b')).status).toBe(200)
    expect(seen.stable!.filter((e) => e.path === '/cached/b').length).toBe(3)
    expect(seen.stable!.filter((e) => e.path.startsWith('/cached/')).length - before).toBe(4)
  })
})

describe('conditions on the identified caller', () => {
  test('app.name and app.group, with a nested when', async () => {
    const partner = await json(await gw.fetch('/me', { headers: { 'X-Api-Key': KEYS.KEY_PARTNER } }))
    expect(partner.upstream).toBe('stable')
    expect(partner.headers['x-partner-tier']).toBe('P1')
    const staff = await gw.fetch('/me', { headers: { 'X-Api-Key': KEYS.KEY_STAFF } })
    expect(await staff.text()).toBe('staff')
    const admin = await gw.fetch('/me', { headers: { 'X-Api-Key': KEYS.KEY_STAFF, 'X-Admin': '1' } })
    expect(await admin.text()).toBe('staff admin')
    // A partner with X-Admin: the nested when is inside the staff-only one.
    const partnerAdmin = await json(await gw.fetch('/me', { headers: { 'X-Api-Key': KEYS.KEY_PARTNER, 'X-Admin': '1' } }))
    expect(partnerAdmin.upstream).toBe('stable')
    await expectProblem(await gw.fetch('/me'), 401, 'unauthenticated')
  })
})

test('gateway routes --wide shows each guarded directive with its condition, terminals in the order they are tried', async () => {
  const { code, stdout } = await runCli(['routes', '--wide', dir], KEYS)
  expect(code).toBe(0)
  const orders = stdout.split('\n').find((l) => l.includes('/orders/{id:int}'))!
  expect(orders).toContain('rewrite: set header (when request.header.X-Env = "beta", "canary")')
  expect(orders).toContain('access: allow ip (when request.method = "DELETE")')
  expect(orders).toContain(
    'proxy beta (when request.header.X-Env = "beta", "canary"), respond (when request.header.User-Agent matches "^BadBot/" or request.query.bot present), proxy stable',
  )
  const me = stdout.split('\n').find((l) => l.includes(' /me '))!
  expect(me).toContain('respond (when app.group = "internal" and request.header.X-Admin = "1"), respond (when app.group = "internal"), proxy stable')
})
