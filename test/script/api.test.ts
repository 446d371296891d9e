// The script API in process (program.fetch, a real upstream on 127.0.0.1): what each stage's
// ctx holds and does, and what a failing script costs the request.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildProgram, renderDiagnostics } from '../../src/index.ts'
import type { Program } from '../../src/runtime/program.ts'
import { GatewayError } from '../../src/runtime/gateway-error.ts'
import { REFUSAL_CODES } from '../../src/script/verdicts.ts'
import { echoOf, policyDir, removeDir, ROOT, startUpstream, type Upstream } from '../helpers/gateway.ts'

let up: Upstream
let dir: string
let program: Program

const scripts: Record<string, string> = {
  'who.ts': `export default (ctx) => ctx.respond(200, {
    keys: Object.keys(ctx), own: Object.getOwnPropertyNames(ctx), json: JSON.stringify(ctx),
    app: ctx.app, appKeys: ctx.app && Object.getOwnPropertyNames(ctx.app), via: ctx.via, user: ctx.user, jwt: ctx.jwt,
    request: { id: ctx.request.id, method: ctx.request.method, host: ctx.request.host, path: ctx.request.path,
      q: ctx.request.query.get('q'), h: ctx.request.headers.get('x-test'), ip: ctx.request.ip, params: ctx.request.params, route: ctx.request.route },
  })`,
  'gate.ts': `export default async (ctx) => {
    const q = ctx.request.query
    if (q.has('refuse')) return ctx.refuse('forbidden', 'not today', { 'retry-after': '60' })
    if (q.has('throw-refusal')) throw ctx.refuse('unauthenticated')
    if (q.has('redirect')) return ctx.respond(302, null, { location: '/elsewhere' })
    if (q.has('text')) return ctx.respond(200, 'hello')
    if (q.has('bad-code')) return ctx.refuse('teapot')
  }`,
  'rewrite.ts': `export default async (ctx) => {
    const q = ctx.request.query
    ctx.upstream.path = '/rewritten/' + ctx.request.params.id
    ctx.upstream.setQuery('added', 'a b')
    ctx.upstream.removeQuery('drop')
    await Promise.resolve()
    ctx.upstream.setHeader('X-Tenant', 'from-script')
    ctx.upstream.removeHeader('X-Remove-Me')
    if (q.has('forbidden-header')) ctx.upstream.setHeader('X-Consumer', 'me')
    if (q.has('bad-path')) ctx.upstream.path = 'no-slash'
  }`,
  'headers-only.ts': `export default (ctx) => { ctx.response.headers.set('x-scripted', String(ctx.response.status)); ctx.response.headers.set('gateway-error', 'forged') }`,
  'mask.ts': `export default async (ctx) => {
    const body = await ctx.response.json()
    if (ctx.request.query.has('keep')) return
    body.secret = '***'
    ctx.response.setBody(body)
  }`,
  'replace.ts': `export default async (ctx) => {
    const q = ctx.request.query
    if (q.has('respond')) return ctx.respond(201, { replaced: true })
    if (q.has('refuse')) return ctx.refuse('bad_gateway', 'the upstream said no')
    ctx.response.setBody('plain text now')
  }`,
  'throws.ts': `export default (ctx) => { throw new Error('secret detail ' + ctx.request.path) }`,
  'rejects.ts': `export default async () => { await Promise.resolve(); throw new TypeError('async failure') }`,
  'hangs.ts': `export default () => new Promise(() => {})`,
  'busy.ts': `export default () => { const end = performance.now() + 60; while (performance.now() < end) {} }`,
  'spin.ts': `export default () => { const end = performance.now() + 3000; while (performance.now() < end) {} }`,
  'returns.ts': `export default (ctx) => ctx.request.query.get('what') === 'number' ? 42 : new Response('no')`,
  'count.ts': `export default async (ctx) => {
    const n = ((await ctx.kv.get('n')) ?? 0) + 1
    await ctx.kv.set('n', n, { ttlMs: 60000 })
    return ctx.respond(200, { n })
  }`,
  'bad-kv.ts': `export default async (ctx) => { await ctx.kv.set('k', undefined) }`,
}

beforeAll(async () => {
  up = startUpstream(async (req) => {
    const url = new URL(req.url)
    if (url.pathname === '/json') return Response.json({ name: 'ada', secret: 'hunter2' })
    if (url.pathname === '/gzip')
      return new Response(Bun.gzipSync(JSON.stringify({ name: 'ada', secret: 'hunter2' })), {
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', etag: '"v1"' },
      })
    if (url.pathname === '/slow-body') {
      let i = 0
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (i === 3) return c.close()
          if (i > 0) await Bun.sleep(150)
          c.enqueue(new TextEncoder().encode(`part${i++};`))
        },
      })
      return new Response(body, { headers: { 'content-type': 'text/plain' } })
    }
    return Response.json(await echoOf(req))
  })
  const files: Record<string, string> = {
    'main.policy': `
app partner {
  key "ak_partner"
  secret env PARTNER_SECRET
  api-key env PARTNER_KEY
  tier gold
  group partners
  meta region "eu-west"
}
tier gold 100/s
upstream up { target ${up.url} }

match GET /who/{id} { require key or hmac; script access "scripts/who.ts"; respond 204 }
match GET /anon { script access "scripts/who.ts"; respond 204 }
match GET /gate {
  script access "scripts/gate.ts"
  set response header X-Header-Step = "ran"
  respond 200 text "passed"
}
match GET /rewrite/{id} { script rewrite "scripts/rewrite.ts"; proxy up }
match GET /headers-only { script response "scripts/headers-only.ts"; rewrite path /slow-body; proxy up }
match GET /mask { script response "scripts/mask.ts"; rewrite path /json; proxy up }
match GET /mask-gzip { script response "scripts/mask.ts"; rewrite path /gzip; proxy up }
match GET /mask-small { script response "scripts/mask.ts" max 10b; rewrite path /json; proxy up }
match GET /replace { script response "scripts/replace.ts"; rewrite path /json; proxy up }
match GET /throws { script access "scripts/throws.ts"; respond 200 }
match GET /rejects { script rewrite "scripts/rejects.ts"; respond 200 }
match GET /hangs { script access "scripts/hangs.ts" timeout 30ms; respond 200 }
match GET /busy { script access "scripts/busy.ts" timeout 20ms; respond 200 }
match GET /busy-ok { script access "scripts/busy.ts" timeout 1s; respond 200 text "ok" }
match GET /returns { script access "scripts/returns.ts"; respond 200 }
match GET /int/gate { script access "scripts/gate.ts" interruptible; respond 200 text "passed" }
match GET /int/throws { script access "scripts/throws.ts" interruptible; respond 200 }
match GET /int/spin { script access "scripts/spin.ts" timeout 20ms interruptible; respond 200 }
match GET /count/a { script access "scripts/count.ts"; respond 200 }
match GET /count/b { script access "scripts/count.ts"; respond 200 }
match GET /bad-kv { script access "scripts/bad-kv.ts"; respond 200 }
`,
  }
  for (const [name, text] of Object.entries(scripts)) files[`scripts/${name}`] = text
  dir = policyDir(files)
  const built = await buildProgram(dir, { env: { PARTNER_SECRET: 'partner-secret-value-0123456789', PARTNER_KEY: 'partner-api-key-0123456789' } })
  if (built.diagnostics) throw new Error(renderDiagnostics(built.diagnostics))
  program = built.program
})
afterAll(() => {
  up?.stop()
  removeDir(dir)
})

const get = (path: string, headers: Record<string, string> = {}) => program.fetch(new Request(`http://gw.test${path}`, { headers }))
async function problem(res: Response): Promise<{ code: string | null; detail: string; status: number }> {
  const body = (await res.json()) as { detail: string }
  return { code: res.headers.get('gateway-error'), detail: body.detail, status: res.status }
}

describe('what a script sees', () => {
  test('the request, the app (name, meta, tier, group) and nothing of the gateway or the app secrets', async () => {
    const res = await get('/who/7?q=search', { host: 'gw.test', 'x-api-key': 'partner-api-key-0123456789', 'x-test': 'yes' })
    expect(res.status).toBe(200)
    const seen = (await res.json()) as Record<string, unknown>
    expect(seen.keys).toEqual([])
    expect(seen.own).toEqual([])
    expect(seen.json).toBe('{}')
    expect(seen.app).toEqual({ name: 'partner', meta: { region: 'eu-west' }, tier: 'gold', group: 'partners' })
    expect(seen.appKeys).toEqual(['name', 'meta', 'tier', 'group'])
    expect(seen.via).toBe('key')
    expect(seen.request).toMatchObject({
      method: 'GET',
      host: 'gw.test',
      path: '/who/7',
      q: 'search',
      h: 'yes',
      ip: '127.0.0.1',
      params: { id: '7' },
    })
    expect((seen.request as { route: string }).route).toBe('GET /who/{id}')
    expect(JSON.stringify(seen)).not.toContain('partner-secret-value')
    expect(JSON.stringify(seen)).not.toContain('partner-api-key')
    expect(JSON.stringify(seen)).not.toContain('ak_partner')
  })

  test('an anonymous caller: app, user and jwt are null', async () => {
    const seen = (await (await get('/anon')).json()) as Record<string, unknown>
    expect([seen.app, seen.user, seen.jwt, seen.via]).toEqual([null, null, null, null])
  })
})

describe('access: refuse and respond', () => {
  test('nothing returned: the request goes on', async () => {
    const res = await get('/gate')
    expect([res.status, await res.text(), res.headers.get('x-header-step')]).toEqual([200, 'passed', 'ran'])
  })

  test('a refusal is a gateway error with the code, detail and headers given', async () => {
    const res = await get('/gate?refuse')
    expect(res.headers.get('retry-after')).toBe('60')
    expect(res.headers.get('x-header-step')).toBe('ran')
    expect(await problem(res)).toEqual({ code: 'forbidden', detail: 'not today', status: 403 })
  })

  test('a thrown refusal counts the same', async () => {
    expect(await problem(await get('/gate?throw-refusal'))).toEqual({ code: 'unauthenticated', detail: "refused by the route's script", status: 401 })
  })

  test("an answer of the script's own ends the request; header steps run on it, it is no gateway error", async () => {
    const res = await get('/gate?redirect')
    expect(res.status).toBe(302)
    expect(res.headers.get('location')).toBe('/elsewhere')
    expect(res.headers.get('gateway-error')).toBeNull()
    expect(res.headers.get('x-header-step')).toBe('ran')
    expect(res.headers.get('x-request-id')).toBeTruthy()
    const text = await get('/gate?text')
    expect([text.status, text.headers.get('content-type'), await text.text()]).toEqual([200, 'text/plain; charset=utf-8', 'hello'])
  })

  test('an unknown refusal code is a failure of the script', async () => {
    expect(await problem(await get('/gate?bad-code'))).toEqual({ code: 'internal_error', detail: "the route's access script failed", status: 500 })
  })

  test('the refusal codes are the gateway error codes', () => {
    const source = readFileSync(join(ROOT, 'src/runtime/gateway-error.ts'), 'utf8')
    const codes = [...source.matchAll(/^ {2}(\w+): \[\d{3}, '/gm)].map((m) => m[1])
    expect([...REFUSAL_CODES].sort()).toEqual(codes.sort() as never)
    for (const code of REFUSAL_CODES) expect(new GatewayError(code, 'x').status).toBeGreaterThan(399)
  })
})

describe('rewrite: the upstream request', () => {
  test('path, query and headers; a header it sets replaces the client’s in any spelling', async () => {
    const res = await get('/rewrite/42?keep=1&drop=2', { x_tenant: 'spoofed', 'x-tenant': 'spoofed-too', 'x-remove-me': 'bye', 'x-other': 'stays' })
    expect(res.status).toBe(200)
    const seen = (await res.json()) as { path: string; query: string; headers: Record<string, string> }
    expect(seen.path).toBe('/rewritten/42')
    expect(seen.query).toBe('keep=1&added=a%20b')
    expect(seen.headers['x-tenant']).toBe('from-script')
    expect(seen.headers['x_tenant']).toBeUndefined()
    expect(seen.headers['x-remove-me']).toBeUndefined()
    expect(seen.headers['x-other']).toBe('stays')
  })

  test('identity and forwarding headers are the gateway’s: setting one fails the script', async () => {
    expect(await problem(await get('/rewrite/1?forbidden-header'))).toMatchObject({ code: 'internal_error', status: 500 })
  })

  test('a malformed path fails the script', async () => {
    expect(await problem(await get('/rewrite/1?bad-path'))).toMatchObject({ code: 'internal_error' })
  })
})

describe('response: headers stream, bodies on demand', () => {
  test('a script that only edits headers does not hold the body back; Gateway-Error cannot be forged', async () => {
    const t0 = performance.now()
    const res = await get('/headers-only')
    const headersAt = performance.now() - t0
    expect(res.headers.get('x-scripted')).toBe('200')
    expect(res.headers.get('gateway-error')).toBeNull()
    expect(await res.text()).toBe('part0;part1;part2;')
    const bodyAt = performance.now() - t0
    expect(headersAt).toBeLessThan(250) // the body takes 300 ms to come
    expect(bodyAt).toBeGreaterThan(280)
  })

  test('read, change and replace a JSON body', async () => {
    const res = await get('/mask')
    expect(await res.json()).toEqual({ name: 'ada', secret: '***' })
  })

  test('a gzip body is decoded for the script; the replaced body goes out plain, the ETag dropped', async () => {
    const res = await get('/mask-gzip')
    expect(res.headers.get('content-encoding')).toBeNull()
    expect(res.headers.get('etag')).toBeNull()
    expect(await res.json()).toEqual({ name: 'ada', secret: '***' })
  })

  test('a body read but not replaced goes out as it came (still gzip)', async () => {
    const res = await program.fetch(new Request('http://gw.test/mask-gzip?keep'))
    expect(res.headers.get('content-encoding')).toBe('gzip')
    expect(res.headers.get('etag')).toBe('"v1"')
    const bytes = new Uint8Array(await res.arrayBuffer())
    // fetch() decodes nothing here: these are the upstream's bytes.
    expect(JSON.parse(new TextDecoder().decode(Bun.gunzipSync(bytes)))).toEqual({ name: 'ada', secret: 'hunter2' })
  })

  test('a body over `max` is a 502 and nothing of it reaches the client', async () => {
    expect(await problem(await get('/mask-small'))).toMatchObject({ code: 'bad_gateway', status: 502 })
  })

  test('replace with text, answer instead, or refuse', async () => {
    expect(await (await get('/replace')).text()).toBe('plain text now')
    const answered = await get('/replace?respond')
    expect([answered.status, await answered.json()]).toEqual([201, { replaced: true }])
    expect(await problem(await get('/replace?refuse'))).toEqual({ code: 'bad_gateway', detail: 'the upstream said no', status: 502 })
  })
})

describe('failures', () => {
  test('a throw is a 500 internal_error whose detail says nothing of the error', async () => {
    const res = await get('/throws')
    const p = await problem(res)
    expect(p).toEqual({ code: 'internal_error', detail: "the route's access script failed", status: 500 })
  })

  test('a rejection of an async rewrite script too', async () => {
    expect(await problem(await get('/rejects'))).toEqual({ code: 'internal_error', detail: "the route's rewrite script failed", status: 500 })
  })

  test('a script that never settles is cut off at its budget', async () => {
    const t0 = performance.now()
    const p = await problem(await get('/hangs'))
    const took = performance.now() - t0
    expect(p).toEqual({ code: 'internal_error', detail: "the route's access script did not finish within its 30 ms budget", status: 500 })
    expect(took).toBeGreaterThanOrEqual(29)
    expect(took).toBeLessThan(500)
  })

  test('a synchronous script past its budget fails once it returns (it cannot be interrupted)', async () => {
    const t0 = performance.now()
    const p = await problem(await get('/busy'))
    expect(performance.now() - t0).toBeGreaterThanOrEqual(59)
    expect(p.detail).toBe("the route's access script did not finish within its 20 ms budget")
    expect((await get('/busy-ok')).status).toBe(200)
  })

  test.each([['number'], ['response']])('a return value that is no verdict (%s) fails the script', async (what) => {
    expect(await problem(await get(`/returns?what=${what}`))).toMatchObject({ code: 'internal_error', status: 500 })
  })

  test('a misuse of the kv fails the script', async () => {
    expect(await problem(await get('/bad-kv'))).toMatchObject({ code: 'internal_error' })
  })
})

describe('interruptible: the same API under the watchdog', () => {
  test('verdicts and answers', async () => {
    expect(await (await get('/int/gate')).text()).toBe('passed')
    expect(await problem(await get('/int/gate?refuse'))).toEqual({ code: 'forbidden', detail: 'not today', status: 403 })
    expect((await get('/int/gate?redirect')).status).toBe(302)
  })

  test('a throw is still the script’s own failure', async () => {
    expect(await problem(await get('/int/throws'))).toEqual({ code: 'internal_error', detail: "the route's access script failed", status: 500 })
  })

  test('a synchronous run is stopped at the budget, not when it returns', async () => {
    const t0 = performance.now()
    const p = await problem(await get('/int/spin'))
    expect(p.detail).toBe("the route's access script did not finish within its 20 ms budget")
    expect(performance.now() - t0).toBeLessThan(1_500) // spin.ts would take 3 s
  })
})

test("kv: a route's values are its own", async () => {
  const n = async (path: string) => ((await (await get(path)).json()) as { n: number }).n
  expect([await n('/count/a'), await n('/count/a'), await n('/count/b'), await n('/count/a')]).toEqual([1, 2, 1, 3])
})
