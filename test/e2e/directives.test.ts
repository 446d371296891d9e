// The rewrite, proxy and response directives at run time, against a real echo upstream.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { echo, policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem, REQUEST_ID, type Echo } from '../helpers/http.ts'

let up: Upstream
let slow: Upstream
let gw: RunningGateway
let dir: string

beforeAll(async () => {
  // The echo upstream, plus response headers for the response-header directives to work on.
  up = startUpstream(async (req) => {
    const res = await echo(req)
    res.headers.set('x-powered-by', 'php/5.6')
    res.headers.set('x-internal', 'node-7')
    res.headers.set('cache-control', 'public, max-age=60')
    return res
  })
  slow = startUpstream(async () => {
    await Bun.sleep(3_000)
    return new Response('too late')
  })
  dir = policyDir({
    'main.policy': `
upstream api { target ${up.url} }
upstream slowpool { target ${slow.url} }

defaults {
  set response header X-Gateway = "portcullis"
  set response header X-Order = "defaults"
  set header X-Layer = "defaults"
}

# proxy
match GET /named/{rest*} { proxy api }
match GET /inline/{rest*} { strip prefix /inline; proxy ${up.url}/base }
match GET /slow { proxy slowpool timeout 300ms }

# respond
match GET /r/json/{id} {
  respond 200 json "{\\"id\\":\\"{param.id}\\",\\"rid\\":\\"{request.id}\\"}"
  set response header X-Rid = request.id
}
match GET /r/text { respond 201 text "hello {request.query.name} via {request.method}" }
match DELETE /r/empty { respond 204 }
match GET /r/braces { respond 200 text "{{literal}} and {not a ref}" }

# rewrite path / strip prefix
match GET /rw/users/{uid}/orders/{oid} { rewrite path /v2/orders/{oid}/by/{uid}; proxy api }
match GET /rw/files/{rest*} { rewrite path /storage/{rest*}; proxy api }
match GET /sp/{rest*} { strip prefix /sp/api; proxy api }

# request headers
match POST /hdr/{tenant} {
  set header X-Static = "fixed"
  set header X-Tmpl = "t-{param.tenant}-{request.method}"
  set header X-Param = param.tenant
  set header X-Ip = request.ip
  set header X-Src-Copy = request.header.X-Src
  set header X-Q = request.query.q
  set header X-Layer = "route"
  remove header X-Remove-Me, X-Also-Gone
  proxy api
}

# query
match GET /q {
  set query added = "yes"
  set query over = request.header.X-Over
  remove query secret, token
  proxy api
}

# response headers
match GET /resp {
  set response header X-Route = "resp-{request.query.v}"
  set response header Cache-Control = "no-store"
  set response header X-Order = "route"
  remove response header X-Powered-By, X-Internal
  proxy api
}
`,
  })
  gw = await startGateway(dir)
})
afterAll(async () => {
  await gw?.stop()
  up?.stop()
  slow?.stop()
  removeDir(dir)
})

const echoOf = async (res: Response): Promise<Echo> => {
  expect(res.status).toBe(200)
  return (await res.json()) as Echo
}
const sortedQuery = (q: string) => [...new URLSearchParams(q)].sort((a, b) => (a[0] + a[1] < b[0] + b[1] ? -1 : 1))

describe('proxy', () => {
  test('to a named upstream: path and query untouched', async () => {
    const e = await echoOf(await gw.fetch('/named/a/b?x=1&y=%20z'))
    expect(e.method).toBe('GET')
    expect(e.raw).toBe('/named/a/b?x=1&y=%20z')
    expect(e.headers.host).toBe(`127.0.0.1:${up.port}`)
  })

  test('to an inline URL: its base path is prepended', async () => {
    const e = await echoOf(await gw.fetch('/inline/x/y?k=v'))
    expect(e.raw).toBe('/base/x/y?k=v')
  })

  test('a per-route timeout answers 504 upstream_timeout in time', async () => {
    const started = performance.now()
    const res = await gw.fetch('/slow')
    await expectProblem(res, 504, 'upstream_timeout')
    const took = performance.now() - started
    expect(took).toBeGreaterThanOrEqual(250)
    expect(took).toBeLessThan(2_000)
  })
})

describe('respond', () => {
  test('json with templates; request.id is the same id the response stage sees', async () => {
    const res = await gw.fetch('/r/json/abc')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/json')
    const body = (await res.json()) as { id: string; rid: string }
    expect(body.id).toBe('abc')
    expect(body.rid).toMatch(REQUEST_ID)
    expect(res.headers.get('x-rid')).toBe(body.rid)
  })

  test('text with a status, a query reference and the method', async () => {
    const res = await gw.fetch('/r/text?name=Ada')
    expect(res.status).toBe(201)
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8')
    expect(await res.text()).toBe('hello Ada via GET')
  })

  test('an absent query reference renders as empty text', async () => {
    expect(await (await gw.fetch('/r/text')).text()).toBe('hello  via GET')
  })

  test('no body', async () => {
    const res = await gw.fetch('/r/empty', { method: 'DELETE' })
    expect(res.status).toBe(204)
    expect(res.headers.get('content-type')).toBeNull()
    expect(await res.text()).toBe('')
  })

  test('{{ is a literal brace, and a { that is not a reference stays as it is', async () => {
    expect(await (await gw.fetch('/r/braces')).text()).toBe('{literal}} and {not a ref}')
  })
})

describe('rewrite path and strip prefix', () => {
  test('rewrite path reorders captures and keeps the query', async () => {
    const e = await echoOf(await gw.fetch('/rw/users/u1/orders/42?x=1&y=2'))
    expect(e.raw).toBe('/v2/orders/42/by/u1?x=1&y=2')
  })

  test('a {rest*} capture keeps its slashes', async () => {
    const e = await echoOf(await gw.fetch('/rw/files/a/b/c.txt?v=3'))
    expect(e.raw).toBe('/storage/a/b/c.txt?v=3')
  })

  test('strip prefix removes whole leading segments and keeps the query', async () => {
    expect((await echoOf(await gw.fetch('/sp/api/users/7?x=1'))).raw).toBe('/users/7?x=1')
  })

  test('stripping the whole path leaves /', async () => {
    expect((await echoOf(await gw.fetch('/sp/api'))).raw).toBe('/')
  })

  test('a prefix that is not a whole segment is not stripped', async () => {
    expect((await echoOf(await gw.fetch('/sp/apix/y'))).raw).toBe('/sp/apix/y')
  })
})

describe('set header / remove header', () => {
  const send = (path: string, headers: Record<string, string> = {}) =>
    gw.fetch(path, { method: 'POST', body: 'payload', headers: { 'x-src': 'from-client', ...headers } })

  test('strings, templates and references reach the upstream', async () => {
    const e = await echoOf(await send('/hdr/t%201?q=search'))
    expect(e.headers['x-static']).toBe('fixed')
    expect(e.headers['x-tmpl']).toBe('t-t 1-POST')
    expect(e.headers['x-param']).toBe('t 1')
    expect(e.headers['x-ip']).toBe('127.0.0.1')
    expect(e.headers['x-src-copy']).toBe('from-client')
    expect(e.headers['x-q']).toBe('search')
    expect(e.body).toBe('payload')
  })

  test('a reference to something absent sets no header', async () => {
    const e = await echoOf(await gw.fetch('/hdr/t1', { method: 'POST', body: 'x' }))
    expect('x-src-copy' in e.headers).toBe(false)
    expect('x-q' in e.headers).toBe(false)
  })

  test('defaults run first: the route overrides a defaults set header', async () => {
    const e = await echoOf(await send('/hdr/t1'))
    expect(e.headers['x-layer']).toBe('route')
  })

  test('a client cannot smuggle a header the policy sets, in any spelling', async () => {
    const e = await echoOf(await send('/hdr/t1', { 'X-Static': 'evil', X_Static: 'evil', 'x.static': 'evil', X_Ip: '6.6.6.6', 'x.param': 'evil' }))
    expect(e.headers['x-static']).toBe('fixed')
    expect(e.headers['x-ip']).toBe('127.0.0.1')
    expect(e.headers['x-param']).toBe('t1')
    const names = Object.keys(e.headers)
    for (const n of ['x_static', 'x.static', 'x_ip', 'x.param']) expect(names).not.toContain(n)
    expect(Object.values(e.headers)).not.toContain('evil')
  })

  test('a decoded capture cannot inject a header line', async () => {
    const e = await echoOf(await send('/hdr/a%0D%0AX-Injected:%20yes'))
    expect(e.headers['x-param']).toBe('a X-Injected: yes')
    expect('x-injected' in e.headers).toBe(false)
  })

  test('remove header removes every spelling of the name, and nothing else', async () => {
    const e = await echoOf(await send('/hdr/t1', { 'X-Remove-Me': 'a', X_Also_Gone: 'b', 'x.remove.me': 'c', 'X-Keep-Me': 'd' }))
    const names = Object.keys(e.headers)
    for (const n of ['x-remove-me', 'x_also_gone', 'x.remove.me']) expect(names).not.toContain(n)
    expect(e.headers['x-keep-me']).toBe('d')
  })
})

describe('set query / remove query', () => {
  test('sets, replaces and removes parameters, keeping the others', async () => {
    const e = await echoOf(await gw.fetch('/q?over=client&keep=1&secret=s&token=t&keep=2', { headers: { 'x-over': 'from header' } }))
    expect(e.path).toBe('/q')
    expect(sortedQuery(e.query)).toEqual([
      ['added', 'yes'],
      ['keep', '1'],
      ['keep', '2'],
      ['over', 'from header'],
    ])
  })

  test('a value with & and = stays one parameter', async () => {
    const e = await echoOf(await gw.fetch('/q', { headers: { 'x-over': 'a&b=c d' } }))
    expect(sortedQuery(e.query)).toEqual([
      ['added', 'yes'],
      ['over', 'a&b=c d'],
    ])
  })

  test('on a request without a query, and a reference to something absent removes the parameter', async () => {
    expect((await echoOf(await gw.fetch('/q'))).raw).toBe('/q?added=yes')
    expect((await echoOf(await gw.fetch('/q?over=client'))).raw).toBe('/q?added=yes')
  })
})

describe('response headers', () => {
  test('set response header sets and replaces; remove response header removes', async () => {
    const res = await gw.fetch('/resp?v=9')
    expect(res.status).toBe(200)
    expect(res.headers.get('x-route')).toBe('resp-9')
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(res.headers.get('x-powered-by')).toBeNull()
    expect(res.headers.get('x-internal')).toBeNull()
    expect(((await res.json()) as Echo).path).toBe('/resp')
  })

  test("defaults response headers are on every route, before the route's own", async () => {
    const resp = await gw.fetch('/resp')
    expect(resp.headers.get('x-gateway')).toBe('portcullis')
    expect(resp.headers.get('x-order')).toBe('route')
    const named = await gw.fetch('/named/x')
    expect(named.headers.get('x-gateway')).toBe('portcullis')
    expect(named.headers.get('x-order')).toBe('defaults')
    expect(named.headers.get('x-powered-by')).toBe('php/5.6')
    const respond = await gw.fetch('/r/text')
    expect(respond.headers.get('x-gateway')).toBe('portcullis')
  })
})
