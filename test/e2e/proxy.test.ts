// Proxy hygiene, the "known traps": hop-by-hop and identity headers, X-Forwarded-*,
// targets that try to leave the upstream, bytes untouched both ways, streaming.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { echo, policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem, raw, REQUEST_ID, type Echo } from '../helpers/http.ts'

let up: Upstream
let special: Upstream
let hop: { port: number; stop(): void }
let gw: RunningGateway
let dir: string

const BIG = 5 * 1024 * 1024
const bigChunk = (i: number) => new Uint8Array(64 * 1024).fill(i % 251)
const GZIPPED = Bun.gzipSync(new TextEncoder().encode('compressed body '.repeat(200)))
const COOKIES = ['a=1; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT', 'b=2; HttpOnly; Secure']

function sha256(data: Uint8Array | ArrayBuffer): string {
  return createHash('sha256').update(new Uint8Array(data)).digest('hex')
}

// Answers every request with a fixed raw response full of hop-by-hop headers
// (Bun.serve would drop some of them itself).
function startRawUpstream(): { port: number; stop(): void } {
  const response = [
    'HTTP/1.1 200 OK',
    'Content-Type: text/plain',
    'Content-Length: 2',
    'Connection: close, X-Hop-B',
    'X-Hop-B: secret',
    'Keep-Alive: timeout=5',
    'Proxy-Authenticate: Basic realm="x"',
    'Upgrade: foo/1',
    'Trailer: X-Checksum',
    'X-Keep: kept',
    '',
    'ok',
  ].join('\r\n')
  const listener = Bun.listen<{ buf: string }>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open: (s) => void (s.data = { buf: '' }),
      data(s, d) {
        s.data.buf += d.toString()
        if (s.data.buf.includes('\r\n\r\n')) {
          s.write(response)
          s.end()
        }
      },
    },
  })
  return { port: listener.port, stop: () => listener.stop(true) }
}

beforeAll(async () => {
  up = startUpstream()
  special = startUpstream(async (req) => {
    const path = new URL(req.url).pathname
    if (path === '/gzip') return new Response(GZIPPED, { headers: { 'content-encoding': 'gzip', 'content-type': 'text/plain' } })
    if (path === '/cookies') {
      const h = new Headers({ 'content-type': 'text/plain' })
      for (const c of COOKIES) h.append('set-cookie', c)
      return new Response('cookies', { headers: h })
    }
    if (path === '/big') {
      let i = 0
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (i * 64 * 1024 >= BIG) return c.close()
          c.enqueue(bigChunk(i++))
        },
      })
      return new Response(body, { headers: { 'content-type': 'application/octet-stream' } })
    }
    if (path === '/upload') {
      const body = new Uint8Array(await req.arrayBuffer())
      return Response.json({
        length: body.byteLength,
        sha256: sha256(body),
        cl: req.headers.get('content-length'),
        te: req.headers.get('transfer-encoding'),
      })
    }
    return echo(req)
  })
  hop = startRawUpstream()
  dir = policyDir({
    'proxy.policy': `
upstream api { target ${up.url} }
upstream special { target ${special.url} }
upstream hop { target http://127.0.0.1:${hop.port} }

match * /{rest*} { proxy api }
match GET /ip { set header X-Client-Ip = request.ip; proxy api }
match GET /only-doc { allow ip 203.0.113.0/24; respond 200 text "in" }
match GET /files/{name} { rewrite path /static/{name}; proxy api }
match * /special/{rest*} { strip prefix /special; proxy special }
match GET /hop { proxy hop }
`,
  })
  gw = await startGateway(dir)
})
afterAll(async () => {
  await gw?.stop()
  up?.stop()
  special?.stop()
  hop?.stop()
  removeDir(dir)
})

const echoOf = (body: string) => JSON.parse(body) as Echo

describe('hop-by-hop headers', () => {
  test('request side: Connection, Keep-Alive, TE, Upgrade, Proxy-* and headers named in Connection are dropped', async () => {
    const res = await raw(gw.url, 'GET', '/anything', [
      'Connection: close, X-Hop-A',
      'X-Hop-A: secret',
      'Keep-Alive: timeout=5',
      'TE: trailers',
      'Upgrade: foo/1',
      'Proxy-Authorization: Basic Zm9vOmJhcg==',
      'Proxy-Connection: keep-alive',
      'X-Keep: kept',
    ])
    expect(res.status).toBe(200)
    const e = echoOf(res.body)
    for (const n of ['x-hop-a', 'keep-alive', 'te', 'upgrade', 'proxy-authorization', 'proxy-connection'])
      expect(Object.keys(e.headers)).not.toContain(n)
    // The gateway's own connection to the upstream may say keep-alive; never the client's tokens.
    expect([undefined, 'keep-alive']).toContain(e.headers.connection)
    expect(e.headers['x-keep']).toBe('kept')
  })

  test("response side: the upstream's hop-by-hop headers never reach the client", async () => {
    const res = await raw(gw.url, 'GET', '/hop')
    expect(res.status).toBe(200)
    expect(res.body).toBe('ok')
    expect(res.header('x-keep')).toBe('kept')
    for (const n of ['x-hop-b', 'keep-alive', 'proxy-authenticate', 'upgrade', 'trailer']) expect([...res.headers.keys()]).not.toContain(n)
    expect(res.header('connection') ?? '').not.toContain('X-Hop-B')
  })
})

describe('forwarding headers', () => {
  test('X-Forwarded-For/-Proto/-Host and X-Request-Id are set by the gateway, not taken from the client', async () => {
    const res = await gw.fetch('/ip', {
      headers: {
        'x-forwarded-for': '203.0.113.9',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'evil.example',
        'x-request-id': 'client-chosen',
        forwarded: 'for=203.0.113.9',
      },
    })
    const e = echoOf(await res.text())
    expect(e.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(e.headers['x-forwarded-proto']).toBe('http')
    expect(e.headers['x-forwarded-host']).toBe(new URL(gw.url).host)
    expect(e.headers['x-client-ip']).toBe('127.0.0.1')
    expect('forwarded' in e.headers).toBe(false)
    const id = e.headers['x-request-id']!
    expect(id).toMatch(REQUEST_ID)
    // The access log line of this request carries the same id and the real peer.
    const line = JSON.parse(await gw.waitFor('stdout', new RegExp(`"request_id":"${id}"`))) as Record<string, unknown>
    expect(line.ip).toBe('127.0.0.1')
    expect(line.path).toBe('/ip')
  })

  test('a spoofed X-Forwarded-For does not pass an allow ip', async () => {
    await expectProblem(await gw.fetch('/only-doc', { headers: { 'x-forwarded-for': '203.0.113.9' } }), 403, 'forbidden')
  })

  test('identity headers never reach the upstream, in any spelling', async () => {
    const sent = {
      'X-Consumer': 'admin',
      X_Consumer: 'admin',
      'x.consumer': 'admin',
      'X-Consumer-Custom-Id': '1',
      'X-Consumer_Username': 'root',
      'X-Credential-Identifier': 'k',
      'X-Anonymous-Consumer': 'false',
      'X-User-Json': 'e30=',
      'X-Client-Cert': 'pem',
      'X-Client-Cert-Foo': 'x',
      'X-Forwarded-Client-Cert': 'Hash=00',
      'X-Consumerism': 'not an identity header',
    }
    const e = echoOf(await (await gw.fetch('/anything', { headers: sent })).text())
    const names = Object.keys(e.headers)
    for (const n of Object.keys(sent)) if (n !== 'X-Consumerism') expect(names).not.toContain(n.toLowerCase())
    expect(e.headers['x-consumerism']).toBe('not an identity header')
  })
})

describe('targets cannot leave the upstream', () => {
  // Bun's HTTP parser may turn `\` into `/` (WHATWG URL) before the gateway sees it; both stay on the upstream.
  const cases: [string, string | string[]][] = [
    ['//evil/x', '/evil/x'],
    ['///evil.test:80/x', '/evil.test:80/x'],
    ['/\\evil', ['/%5Cevil', '/evil']],
    ['/\\\\evil/x', ['/%5C%5Cevil/x', '/evil/x']],
    ['/..%2F..%2Fetc', '/..%2F..%2Fetc'],
    ['/%2e%2e/%2e%2e/etc/passwd', '/etc/passwd'],
    ['/a/../../../etc', '/etc'],
    ['/files/..%2F..%2Fsecret', '/static/..%2F..%2Fsecret'],
    ['/files/%2e%2e%2fsecret', '/static/..%2Fsecret'],
    ['/files/..%5C..%5Csecret', '/static/..%5C..%5Csecret'],
  ]
  for (const [target, want] of cases) {
    test(`${target} → ${want} on the configured upstream`, async () => {
      const res = await raw(gw.url, 'GET', target)
      expect(res.status).toBe(200)
      const e = echoOf(res.body)
      if (typeof want === 'string') expect(e.raw).toBe(want)
      else expect(want).toContain(e.raw)
      expect(e.headers.host).toBe(`127.0.0.1:${up.port}`)
    })
  }

  test('an absolute-form target keeps the configured upstream', async () => {
    const res = await raw(gw.url, 'GET', 'http://evil.test/x?y=1')
    const e = echoOf(res.body)
    expect(e.raw).toBe('/x?y=1')
    expect(e.headers.host).toBe(`127.0.0.1:${up.port}`)
  })
})

describe('bodies, untouched and streamed', () => {
  test('a gzip response reaches the client byte for byte with its Content-Encoding', async () => {
    const res = await fetch(`${gw.url}/special/gzip`, { decompress: false })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-encoding')).toBe('gzip')
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(GZIPPED)
  })

  test('a request body with Content-Length arrives intact', async () => {
    const data = crypto.getRandomValues(new Uint8Array(60_000))
    const res = await gw.fetch('/special/upload', { method: 'POST', body: data })
    expect(await res.json()).toEqual({ length: 60_000, sha256: sha256(data), cl: '60000', te: null })
  })

  test('a streamed (chunked) request body of 3 MB arrives intact', async () => {
    const part = crypto.getRandomValues(new Uint8Array(64 * 1024))
    const parts = 48
    let sent = 0
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent++ >= parts) return c.close()
        c.enqueue(part)
      },
    })
    const hash = createHash('sha256')
    for (let i = 0; i < parts; i++) hash.update(part)
    const res = await gw.fetch('/special/upload', { method: 'POST', body, duplex: 'half' } as RequestInit)
    const got = (await res.json()) as { length: number; sha256: string; cl: string | null }
    expect(got.length).toBe(parts * part.byteLength)
    expect(got.sha256).toBe(hash.digest('hex'))
    expect(got.cl).toBeNull()
  })

  test('a 5 MB streamed response arrives intact', async () => {
    const res = await gw.fetch('/special/big')
    expect(res.status).toBe(200)
    const got = new Uint8Array(await res.arrayBuffer())
    expect(got.byteLength).toBe(BIG)
    const hash = createHash('sha256')
    for (let i = 0; i * 64 * 1024 < BIG; i++) hash.update(bigChunk(i))
    expect(sha256(got)).toBe(hash.digest('hex'))
  })

  test('two Set-Cookie headers pass through separately', async () => {
    const res = await gw.fetch('/special/cookies')
    expect(res.headers.getSetCookie()).toEqual(COOKIES)
    expect(await res.text()).toBe('cookies')
  })
})
