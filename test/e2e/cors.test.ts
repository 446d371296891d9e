// `cors` through the real gateway: preflights answered by the gateway (before `require`, never
// upstream, on routes whose methods leave OPTIONS out), the CORS headers on every answer of the
// route (upstream answers and gateway errors), origin matching, defaults, and check errors.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import {
  policyDir,
  removeDir,
  runCli,
  startGateway,
  startRecordingUpstream,
  startUpstream,
  type RunningGateway,
  type Upstream,
} from '../helpers/gateway.ts'
import { expectProblem, raw, type Echo } from '../helpers/http.ts'
import { untilTruthy } from '../helpers/poll.ts'

const APP = 'https://app.example.com'
const KEY = 'web-key-0123456789abcdef'

let upstream: Upstream
let rogue: Upstream
let gw: RunningGateway
let dir: string
const hits: Echo[] = []
let rogueHits = 0

const preflight = (path: string, origin: string, method: string, headers?: string) =>
  gw.fetch(path, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': method, ...(headers === undefined ? {} : { 'access-control-request-headers': headers }) },
  })

const vary = (res: Response) => (res.headers.get('vary') ?? '').split(',').map((s) => s.trim().toLowerCase())

beforeAll(async () => {
  upstream = startRecordingUpstream(hits)
  // An upstream that does CORS its own way: on a cors route the gateway's headers win.
  rogue = startUpstream(() => {
    rogueHits++
    return new Response('rogue', {
      headers: {
        'access-control-allow-origin': '*',
        'access-control-allow-credentials': 'true',
        'access-control-expose-headers': 'X-Secret',
        'access-control-max-age': '86400',
        vary: 'Accept-Encoding',
      },
    })
  })
  dir = policyDir({
    'apps.policy': `app web { api-key env WEB_KEY }\n`,
    'routes.policy': `
upstream echo { target ${upstream.url} }
upstream rogue { target ${rogue.url} }

# cors after require: a preflight is still answered first, without the key
match GET,POST /api/orders {
  require key
  cors origins "${APP}", "https://*.example.org", http://localhost:3000 methods GET, POST, PUT headers X-Api-Key, Content-Type expose X-Request-Id, RateLimit-Remaining credentials max-age 10m
  proxy echo
}
match * /open/{rest*} {
  cors * headers *
  proxy echo
}
match GET /rogue {
  cors origins "${APP}"
  proxy rogue
}
match GET /limited {
  cors origins "${APP}"
  throttle 1/min per ip
  respond 200 text "ok"
}
match GET /sandboxed {
  cors origins null, "${APP}"
  respond 200 text "ok"
}
match OPTIONS /own-options { proxy echo }
match GET /own-options {
  cors origins "${APP}"
  proxy echo
}
match GET /plain { proxy echo }
`,
  })
  gw = await startGateway(dir, [], { WEB_KEY: KEY })
})

afterAll(async () => {
  await gw?.stop()
  upstream?.stop()
  rogue?.stop()
  if (dir) removeDir(dir)
})

describe('a preflight', () => {
  test('is answered by the gateway with 204 and what the route allows, without the key and without the upstream', async () => {
    const before = hits.length
    const res = await preflight('/api/orders', APP, 'POST', 'content-type,x-api-key')
    expect(res.status).toBe(204)
    expect(await res.text()).toBe('')
    expect(res.headers.get('access-control-allow-origin')).toBe(APP)
    expect(res.headers.get('access-control-allow-credentials')).toBe('true')
    expect(res.headers.get('access-control-allow-methods')).toBe('GET, POST, PUT')
    expect(res.headers.get('access-control-allow-headers')).toBe('X-Api-Key, Content-Type')
    expect(res.headers.get('access-control-max-age')).toBe('600')
    expect(res.headers.has('access-control-expose-headers')).toBe(false)
    expect(vary(res)).toEqual(['origin', 'access-control-request-method', 'access-control-request-headers'])
    expect(res.headers.has('gateway-error')).toBe(false)
    expect(res.headers.get('x-request-id')).toBeTruthy()
    expect(hits.length).toBe(before)
  })

  test('works on a route whose methods leave OPTIONS out, while a plain OPTIONS there is still 405', async () => {
    const ok = await preflight('/api/orders', APP, 'GET')
    expect(ok.status).toBe(204)
    const plain = await gw.fetch('/api/orders', { method: 'OPTIONS', headers: { origin: APP } })
    const p = await expectProblem(plain, 405, 'method_not_allowed')
    expect(p.detail).toContain('OPTIONS')
    expect(plain.headers.get('allow')).toBe('GET, POST')
  })

  test('for a method no route serves at the path is a 405, never proxied', async () => {
    const before = hits.length
    await expectProblem(await preflight('/api/orders', APP, 'DELETE'), 405, 'method_not_allowed')
    expect(hits.length).toBe(before)
  })

  test('from an origin the route does not allow is refused with 403 and no CORS headers', async () => {
    const before = hits.length
    for (const origin of [
      'https://evil.example.com',
      'https://example.org',
      'https://evil-example.org',
      'null',
      `${APP}.evil.com`,
      'http://app.example.com',
    ]) {
      const res = await preflight('/api/orders', origin, 'POST', 'content-type')
      const p = await expectProblem(res, 403, 'forbidden')
      expect(p.detail).toContain('origin')
      expect(res.headers.has('access-control-allow-origin')).toBe(false)
      expect(res.headers.has('access-control-allow-methods')).toBe(false)
    }
    expect(hits.length).toBe(before)
  })

  test('asking for a header or method the route does not allow is refused with 403 naming it', async () => {
    const h = await expectProblem(await preflight('/api/orders', APP, 'POST', 'content-type, authorization'), 403, 'forbidden')
    expect(h.detail).toContain('authorization')
    const open = await expectProblem(await preflight('/own-options', APP, 'GET', 'x-api-key'), 403, 'forbidden')
    expect(open.detail).toContain('x-api-key')
    // A route that allows methods GET, POST, PUT but only serves GET, POST: PUT has no route.
    await expectProblem(await preflight('/api/orders', APP, 'PUT'), 405, 'method_not_allowed')
    expect(
      await (
        await gw.fetch('/api/orders', { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'GE T' } })
      ).status,
    ).toBe(405)
  })

  test('on `cors * headers *`: Access-Control-Allow-Origin is *, the asked method and headers are echoed', async () => {
    const before = hits.length
    const res = await preflight('/open/things/1', 'https://anyone.test', 'DELETE', 'x-one, authorization')
    expect(res.status).toBe(204)
    expect(res.headers.get('access-control-allow-origin')).toBe('*')
    expect(res.headers.has('access-control-allow-credentials')).toBe(false)
    expect(res.headers.get('access-control-allow-methods')).toBe('DELETE')
    expect(res.headers.get('access-control-allow-headers')).toBe('x-one, authorization')
    expect(res.headers.has('access-control-max-age')).toBe(false)
    expect(hits.length).toBe(before)
  })

  test('goes to the route serving the method asked about; a plain OPTIONS goes to the OPTIONS route', async () => {
    const before = hits.length
    const res = await preflight('/own-options', APP, 'GET')
    expect(res.status).toBe(204)
    expect(res.headers.get('access-control-allow-methods')).toBe('GET')
    expect(hits.length).toBe(before)
    const plain = await gw.fetch('/own-options', { method: 'OPTIONS', headers: { origin: APP } })
    expect(plain.status).toBe(200)
    expect(hits.length).toBe(before + 1)
    expect(hits.at(-1)!.method).toBe('OPTIONS')
  })

  test('on a route without cors is not answered: 405 with no CORS headers', async () => {
    const res = await preflight('/plain', APP, 'GET')
    await expectProblem(res, 405, 'method_not_allowed')
    expect(res.headers.has('access-control-allow-origin')).toBe(false)
  })

  test('over a raw socket: one 204 head, no body, and the access log records it', async () => {
    const res = await raw(gw.url, 'OPTIONS', '/api/orders', [`Origin: ${APP}`, 'Access-Control-Request-Method: POST'])
    expect(res.status).toBe(204)
    expect(res.body).toBe('')
    expect(res.headers.get('access-control-allow-origin')).toEqual([APP])
    expect(res.header('content-length') ?? '0').toBe('0')
    const id = res.header('x-request-id')!
    const entry = await untilTruthy(() => gw.accessLog().find((e) => e.request_id === id))
    expect(entry.status).toBe(204)
    expect(entry.method).toBe('OPTIONS')
    expect(entry.route).toBe('GET,POST /api/orders')
  })
})

describe('an actual request', () => {
  test('from an allowed origin gets Access-Control-Allow-Origin, -Credentials, -Expose-Headers and Vary: Origin', async () => {
    const res = await gw.fetch('/api/orders', { headers: { origin: APP, 'x-api-key': KEY } })
    expect(res.status).toBe(200)
    expect(res.headers.get('access-control-allow-origin')).toBe(APP)
    expect(res.headers.get('access-control-allow-credentials')).toBe('true')
    expect(res.headers.get('access-control-expose-headers')).toBe('X-Request-Id, RateLimit-Remaining')
    expect(res.headers.has('access-control-allow-methods')).toBe(false)
    expect(vary(res)).toContain('origin')
    const echo = (await res.json()) as Echo
    expect(echo.headers.origin).toBe(APP)
  })

  test('refused by `require key` still carries the CORS headers, so the page can read the 401', async () => {
    const res = await gw.fetch('/api/orders', { headers: { origin: APP } })
    await expectProblem(res, 401, 'unauthenticated')
    expect(res.headers.get('access-control-allow-origin')).toBe(APP)
    expect(res.headers.get('access-control-allow-credentials')).toBe('true')
    expect(res.headers.get('access-control-expose-headers')).toBe('X-Request-Id, RateLimit-Remaining')
    expect(vary(res)).toContain('origin')
  })

  test('refused by a throttle (429) carries them too', async () => {
    const first = await gw.fetch('/limited', { headers: { origin: APP } })
    expect(first.status).toBe(200)
    expect(first.headers.get('access-control-allow-origin')).toBe(APP)
    const second = await gw.fetch('/limited', { headers: { origin: APP } })
    await expectProblem(second, 429, 'rate_limited')
    expect(second.headers.get('access-control-allow-origin')).toBe(APP)
    expect(second.headers.get('retry-after')).toBeTruthy()
  })

  test('from an origin not allowed, or with no Origin, gets no CORS headers but still Vary: Origin', async () => {
    for (const headers of [{ origin: 'https://evil.example.com' }, { origin: 'null' }, {}] as Record<string, string>[]) {
      const res = await gw.fetch('/api/orders', { headers: { ...headers, 'x-api-key': KEY } })
      expect(res.status).toBe(200)
      expect(res.headers.has('access-control-allow-origin')).toBe(false)
      expect(res.headers.has('access-control-allow-credentials')).toBe(false)
      expect(res.headers.has('access-control-expose-headers')).toBe(false)
      expect(vary(res)).toContain('origin')
    }
  })

  test('origins: exact (any case, default port), wildcard subdomains at any depth, never the bare domain or a look-alike', async () => {
    const allowed = [
      APP,
      'https://APP.Example.com',
      `${APP}:443`,
      'http://localhost:3000',
      'https://a.example.org',
      'https://a.b.example.org',
      'https://A.Example.ORG',
    ]
    const refused = [
      'https://example.org',
      'https://evil-example.org',
      'https://a.example.org.evil.net',
      'http://a.example.org',
      'https://a.example.org:8443',
      `${APP}:8443`,
      'http://localhost:3001',
      'https://localhost:3000',
      `${APP}/`,
      'app.example.com',
      '',
    ]
    for (const origin of allowed) {
      const res = await gw.fetch('/api/orders', { headers: { origin, 'x-api-key': KEY } })
      expect([origin, res.headers.get('access-control-allow-origin')]).toEqual([origin, origin])
    }
    for (const origin of refused) {
      const res = await gw.fetch('/api/orders', { headers: { origin, 'x-api-key': KEY } })
      expect([origin, res.headers.get('access-control-allow-origin')]).toEqual([origin, null])
    }
  })

  test('`null` is allowed only where it is listed; `cors *` answers * to any other origin', async () => {
    const listed = await gw.fetch('/sandboxed', { headers: { origin: 'null' } })
    expect(listed.headers.get('access-control-allow-origin')).toBe('null')
    const pre = await preflight('/sandboxed', 'null', 'GET')
    expect(pre.status).toBe(204)
    expect(pre.headers.get('access-control-allow-origin')).toBe('null')
    const open = await gw.fetch('/open/x', { headers: { origin: 'https://anyone.test' } })
    expect(open.headers.get('access-control-allow-origin')).toBe('*')
    const openNull = await gw.fetch('/open/x', { headers: { origin: 'null' } })
    expect(openNull.headers.has('access-control-allow-origin')).toBe(false)
  })

  test("the upstream's own Access-Control-* headers are replaced by the route's; its Vary is kept", async () => {
    const before = rogueHits
    const res = await gw.fetch('/rogue', { headers: { origin: APP } })
    expect(await res.text()).toBe('rogue')
    expect(res.headers.get('access-control-allow-origin')).toBe(APP)
    expect(res.headers.has('access-control-allow-credentials')).toBe(false)
    expect(res.headers.has('access-control-expose-headers')).toBe(false)
    expect(res.headers.has('access-control-max-age')).toBe(false)
    expect(vary(res)).toEqual(['accept-encoding', 'origin'])
    const evil = await gw.fetch('/rogue', { headers: { origin: 'https://evil.test' } })
    await evil.text()
    expect(evil.headers.has('access-control-allow-origin')).toBe(false)
    expect(evil.headers.has('access-control-allow-credentials')).toBe(false)
    // A preflight never reaches it.
    expect((await preflight('/rogue', APP, 'GET')).status).toBe(204)
    expect(rogueHits).toBe(before + 2)
  })
})

describe('cors in defaults', () => {
  let g: RunningGateway
  let d: string
  beforeAll(async () => {
    d = policyDir({
      'routes.policy': `
defaults {
  cors origins "https://d.example.com" methods GET
}
match GET /inherits { respond 200 text "ok" }
match GET /own {
  cors origins "https://own.example.com"
  respond 200 text "ok"
}
`,
    })
    g = await startGateway(d)
  })
  afterAll(async () => {
    await g?.stop()
    if (d) removeDir(d)
  })

  test("applies to every route; a route's own cors replaces it", async () => {
    const inherited = await g.fetch('/inherits', { headers: { origin: 'https://d.example.com' } })
    expect(inherited.headers.get('access-control-allow-origin')).toBe('https://d.example.com')
    const pre = await g.fetch('/inherits', {
      method: 'OPTIONS',
      headers: { origin: 'https://d.example.com', 'access-control-request-method': 'GET' },
    })
    expect(pre.status).toBe(204)
    expect(pre.headers.get('access-control-allow-methods')).toBe('GET')
    const replaced = await g.fetch('/own', { headers: { origin: 'https://d.example.com' } })
    expect(replaced.headers.has('access-control-allow-origin')).toBe(false)
    const own = await g.fetch('/own', { headers: { origin: 'https://own.example.com' } })
    expect(own.headers.get('access-control-allow-origin')).toBe('https://own.example.com')
  })
})

describe('gateway check', () => {
  test('reports bad origins, * with credentials and a repeated cors at their positions', async () => {
    const d = policyDir({
      'bad.policy': [
        'match GET /a {',
        '  cors origins "https://app.example.com/" credentials',
        '  respond 200',
        '}',
        'match GET /b {',
        '  cors * credentials',
        '  respond 200',
        '}',
        'match GET /c {',
        '  cors origins "ftp://x.example.com", "https://*.com", "https://a.example.com?x=1", https://*.example.com',
        '  respond 200',
        '}',
        'match GET /d {',
        '  cors origins "https://a.example.com"',
        '  cors *',
        '  respond 200',
        '}',
        'match GET /e {',
        '  cors origins "https://a.example.com" expose * credentials',
        '  respond 200',
        '}',
        'match GET /f {',
        '  cors origins "https://a.example.com" methods get headers X-Api-Key max-age 2d',
        '  respond 200',
        '}',
        '',
      ].join('\n'),
    })
    try {
      const { code, stderr, stdout } = await runCli(['check', d])
      const out = stdout + stderr
      expect(code).toBe(1)
      expect(out).toContain("bad.policy:2:16: error: an origin has no path: write 'https://app.example.com', without the trailing '/'")
      expect(out).toContain("bad.policy:6:10: error: 'credentials' cannot go with every origin (*)")
      expect(out).toContain("bad.policy:10:16: error: 'ftp://x.example.com' is not a web origin: the scheme must be http or https")
      expect(out).toContain("bad.policy:10:39: error: 'https://*.com' would allow too much")
      expect(out).toContain("bad.policy:10:56: error: an origin is scheme://host[:port] only, with no path, query or fragment: remove '?x=1'")
      expect(out).toContain("bad.policy:15:3: error: 'cors' is given once in a block")
      expect(out).toContain("bad.policy:19:49: error: 'credentials' cannot go with 'expose *'")
      expect(out).toContain('bad.policy:23:48: error: methods are upper case: write GET')
      expect(out).toContain('8 errors')
    } finally {
      removeDir(d)
    }
  })

  test('accepts cors in defaults, bare and quoted origins, and every option', async () => {
    const d = policyDir({
      'ok.policy': `
defaults { cors * methods * headers * expose * max-age 1h }
match GET /a {
  cors origins https://app.example.com, "http://localhost:3000", "https://*.example.org:8443", null methods GET, PUT headers X-Api-Key expose X-Request-Id credentials max-age 7200s
  respond 200
}
match GET /b { respond 200 }
`,
    })
    try {
      const { code, stderr } = await runCli(['check', d])
      expect(stderr).toBe('')
      expect(code).toBe(0)
    } finally {
      removeDir(d)
    }
  })
})
