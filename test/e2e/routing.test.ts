// Routing end to end: methods, hosts, precedence, typed captures, path normalisation.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem, expectRawProblem, raw, type Echo } from '../helpers/http.ts'

let up: Upstream
let gw: RunningGateway
let dir: string

beforeAll(async () => {
  up = startUpstream()
  dir = policyDir({
    'routes.policy': `
upstream api { target ${up.url} }

# methods
match GET /m/get { respond 200 text "get" }
match POST,PUT /m/write { respond 200 text "write {request.method}" }
match * /m/any { respond 200 text "any {request.method}" }
match GET,HEAD /m/head { respond 200 text "head-body" }
match GET /m/split { respond 200 text "split get" }
match DELETE /m/split { respond 200 text "split delete" }

# hosts
match GET /h { respond 200 text "any host" }
match GET /h host api.example.com { respond 200 text "exact host" }
match GET /h host *.example.com { respond 200 text "wildcard host" }
match GET /admin-only host admin.example.org { respond 200 text "admin" }

# precedence: literal > typed > param > rest
match GET /p/new { respond 200 text "literal" }
match GET /p/{id:int} { respond 200 text "int {param.id}" }
match GET /p/{id:uuid} { respond 200 text "uuid {param.id}" }
match GET /p/{code:/[A-Z]{3}/} { respond 200 text "code {param.code}" }
match GET /p/{name} { respond 200 text "param {param.name}" }
match GET /p/{rest*} { respond 200 text "rest {param.rest}" }

# normalisation
match GET /a/c { respond 200 text "a-c" }
match GET /api/{rest*} { proxy api }
match GET /seg/{name} { rewrite path /got/{name}; proxy api }
match GET /seg/{a}/{b} { respond 200 text "two {param.a} {param.b}" }
`,
  })
  gw = await startGateway(dir)
})
afterAll(async () => {
  await gw?.stop()
  up?.stop()
  removeDir(dir)
})

const text = async (res: Response) => [res.status, await res.text()] as const

describe('methods', () => {
  test('a GET route answers GET', async () => {
    expect(await text(await gw.fetch('/m/get'))).toEqual([200, 'get'])
  })

  test('a method list answers each of its methods', async () => {
    expect(await text(await gw.fetch('/m/write', { method: 'POST', body: 'x' }))).toEqual([200, 'write POST'])
    expect(await text(await gw.fetch('/m/write', { method: 'PUT', body: 'x' }))).toEqual([200, 'write PUT'])
  })

  test('* answers every method', async () => {
    for (const method of ['GET', 'POST', 'PATCH', 'DELETE', 'OPTIONS']) {
      expect(await text(await gw.fetch('/m/any', { method }))).toEqual([200, `any ${method}`])
    }
  })

  test('HEAD on a GET,HEAD route: 200, the headers, no body', async () => {
    const res = await gw.fetch('/m/head', { method: 'HEAD' })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8')
    expect(await res.text()).toBe('')
  })

  test('another method on a known path is a 405 with Allow', async () => {
    const res = await gw.fetch('/m/write', { method: 'DELETE' })
    expect(res.headers.get('allow')).toBe('POST, PUT')
    await expectProblem(res, 405, 'method_not_allowed')
  })

  test('Allow lists the methods of every route of the path', async () => {
    const res = await gw.fetch('/m/split', { method: 'POST', body: 'x' })
    expect(res.headers.get('allow')).toBe('DELETE, GET')
    await expectProblem(res, 405, 'method_not_allowed')
    expect(await text(await gw.fetch('/m/split', { method: 'DELETE' }))).toEqual([200, 'split delete'])
  })

  test('an unknown path is a 404 no_route', async () => {
    await expectProblem(await gw.fetch('/nowhere/at/all'), 404, 'no_route')
  })
})

describe('hosts', () => {
  const viaHost = (host: string, path = '/h') => raw(gw.url, 'GET', path, [`Host: ${host}`])

  test('an exact host wins over a wildcard and over no host', async () => {
    const res = await viaHost('api.example.com')
    expect([res.status, res.body]).toEqual([200, 'exact host'])
  })

  test('the host compares case-insensitively and without the port', async () => {
    const res = await viaHost('API.Example.COM:8443')
    expect([res.status, res.body]).toEqual([200, 'exact host'])
  })

  test('*.example.com matches a subdomain', async () => {
    expect((await viaHost('www.example.com')).body).toBe('wildcard host')
    expect((await viaHost('a.b.example.com')).body).toBe('wildcard host')
  })

  test('*.example.com does not match example.com itself nor another domain', async () => {
    expect((await viaHost('example.com')).body).toBe('any host')
    expect((await viaHost('notexample.com')).body).toBe('any host')
    expect((await viaHost('example.com.evil.test')).body).toBe('any host')
  })

  test('a route scoped to a host is not found under another host', async () => {
    expect((await viaHost('admin.example.org', '/admin-only')).body).toBe('admin')
    expectRawProblem(await viaHost('api.example.com', '/admin-only'), 404, 'no_route')
  })
})

describe('precedence and captures', () => {
  const cases: [string, string][] = [
    ['/p/new', 'literal'],
    ['/p/123', 'int 123'],
    ['/p/0b0c7f2e-9d2a-4c1b-8f3e-5a6b7c8d9e0f', 'uuid 0b0c7f2e-9d2a-4c1b-8f3e-5a6b7c8d9e0f'],
    ['/p/ABC', 'code ABC'],
    ['/p/ABCD', 'param ABCD'],
    ['/p/abc', 'param abc'],
    ['/p/12a', 'param 12a'],
    ['/p/newer', 'param newer'],
    ['/p/a/b/c', 'rest a/b/c'],
    ['/p/123/x', 'rest 123/x'],
  ]
  for (const [path, want] of cases) {
    test(`${path} → ${want}`, async () => {
      expect(await text(await gw.fetch(path))).toEqual([200, want])
    })
  }
})

describe('normalisation', () => {
  test('dot-segments are resolved before matching', async () => {
    const res = await raw(gw.url, 'GET', '/a/./b/../c')
    expect([res.status, res.body]).toEqual([200, 'a-c'])
  })

  test('dot-segments cannot climb above the root', async () => {
    expect((await raw(gw.url, 'GET', '/../../a/c')).body).toBe('a-c')
    expect((await raw(gw.url, 'GET', '/api/../../../a/c')).body).toBe('a-c')
  })

  test('duplicate slashes are merged', async () => {
    expect((await raw(gw.url, 'GET', '//a///c')).body).toBe('a-c')
  })

  test('a trailing slash matches the route without it', async () => {
    expect((await raw(gw.url, 'GET', '/a/c/')).body).toBe('a-c')
  })

  test('the upstream gets the normalised path, trailing slash kept', async () => {
    const res = await raw(gw.url, 'GET', '/api/./x/../y//z/?q=1')
    expect(res.status).toBe(200)
    const echo = JSON.parse(res.body) as Echo
    expect(echo.raw).toBe('/api/y/z/?q=1')
  })

  test('percent-encoded unreserved characters are decoded (/%61pi → /api)', async () => {
    const res = await raw(gw.url, 'GET', '/%61pi/%7Euser/%41-b')
    expect(res.status).toBe(200)
    expect((JSON.parse(res.body) as Echo).raw).toBe('/api/~user/A-b')
  })

  test('an encoded dot-segment is resolved too', async () => {
    const res = await raw(gw.url, 'GET', '/api/x/%2e%2e/y')
    expect((JSON.parse(res.body) as Echo).raw).toBe('/api/y')
  })

  test('%2F stays inside its segment: one capture, not two segments', async () => {
    const res = await raw(gw.url, 'GET', '/seg/a%2Fb')
    expect(res.status).toBe(200)
    expect((JSON.parse(res.body) as Echo).raw).toBe('/got/a%2Fb')
    const lower = await raw(gw.url, 'GET', '/seg/a%2fb')
    expect((JSON.parse(lower.body) as Echo).raw).toBe('/got/a%2Fb')
    // …while a real slash is two segments.
    expect((await raw(gw.url, 'GET', '/seg/a/b')).body).toBe('two a b')
  })

  test('malformed percent-encoding is a 400 bad_request', async () => {
    expectRawProblem(await raw(gw.url, 'GET', '/%zz'), 400, 'bad_request')
    expectRawProblem(await raw(gw.url, 'GET', '/api/x%4'), 400, 'bad_request')
  })

  test('an encoded NUL is a 400 bad_request', async () => {
    expectRawProblem(await raw(gw.url, 'GET', '/api/a%00b'), 400, 'bad_request')
  })
})
