// The access-stage directives at run time: allow ip, deny ip, limit body, status; defaults.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { policyDir, rawRequest, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem, expectRawProblem, parseRaw, type Echo } from '../helpers/http.ts'

let up: Upstream
let gw: RunningGateway
let dir: string
let upstreamHits = 0

beforeAll(async () => {
  // Reports the body it received: length and content.
  up = startUpstream(async (req) => {
    upstreamHits++
    const body = new Uint8Array(await req.arrayBuffer())
    return Response.json({ path: new URL(req.url).pathname, length: body.byteLength, sum: body.reduce((s, b) => (s + b) % 65_521, 0) })
  })
  dir = policyDir({
    'access.policy': `
upstream api { target ${up.url} }

defaults {
  limit body 64kb
  set response header X-Defaults = "yes"
}

match GET /ip/allow-local { allow ip 127.0.0.1, ::1; respond 200 text "allowed" }
match GET /ip/allow-other { allow ip 10.0.0.0/8, 2001:db8::/32; respond 200 text "allowed" }
match GET /ip/deny-local { deny ip 192.168.0.0/16, 127.0.0.0/8; respond 200 text "not denied" }
match GET /ip/deny-other { deny ip 192.168.0.0/16, 2001:db8::/32; respond 200 text "not denied" }
match GET /ip/deny-proxy { deny ip 127.0.0.1; proxy api }

match POST /upload/small { limit body 1kb; proxy api }
match POST /upload/default { proxy api }

match GET /life/deprecated { status deprecated since 2025-01-01 sunset 2027-06-30; proxy api }
match GET /life/deprecated-ts { status deprecated since 2026-03-01T12:00:00Z; respond 200 text "old" }
match GET /life/deprecated-plain { status deprecated; respond 200 text "still here" }
match GET /life/blocked { status blocked; proxy api }
match GET /life/retired { status retired; proxy api }
`,
  })
  gw = await startGateway(dir)
})
afterAll(async () => {
  await gw?.stop()
  up?.stop()
  removeDir(dir)
})

// Deterministic bytes, so the upstream's checksum can be compared.
function bytes(n: number, seed = 7): Uint8Array {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff
  return out
}
const checksum = (b: Uint8Array) => b.reduce((s, x) => (s + x) % 65_521, 0)

// A body sent with Transfer-Encoding: chunked (no Content-Length), in `parts` pieces.
function chunked(data: Uint8Array, parts: number): ReadableStream<Uint8Array> {
  const size = Math.ceil(data.byteLength / parts)
  let i = 0
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (i >= data.byteLength) return controller.close()
      controller.enqueue(data.slice(i, i + size))
      i += size
      await Bun.sleep(1)
    },
  })
}

const post = (path: string, body: Uint8Array | ReadableStream<Uint8Array>) => gw.fetch(path, { method: 'POST', body, duplex: 'half' } as RequestInit)

describe('allow ip / deny ip', () => {
  test('allow ip that includes 127.0.0.1 lets the caller through', async () => {
    const res = await gw.fetch('/ip/allow-local')
    expect([res.status, await res.text()]).toEqual([200, 'allowed'])
  })

  test('allow ip that excludes 127.0.0.1 is a 403 forbidden', async () => {
    await expectProblem(await gw.fetch('/ip/allow-other'), 403, 'forbidden')
  })

  test('deny ip that includes 127.0.0.1 is a 403 forbidden', async () => {
    await expectProblem(await gw.fetch('/ip/deny-local'), 403, 'forbidden')
  })

  test('deny ip that excludes 127.0.0.1 lets the caller through', async () => {
    const res = await gw.fetch('/ip/deny-other')
    expect([res.status, await res.text()]).toEqual([200, 'not denied'])
  })

  test('a denied request never reaches the upstream', async () => {
    const before = upstreamHits
    await expectProblem(await gw.fetch('/ip/deny-proxy'), 403, 'forbidden')
    expect(upstreamHits).toBe(before)
  })
})

describe('limit body', () => {
  test('a Content-Length over the limit is a 413, and the upstream is not called', async () => {
    const before = upstreamHits
    await expectProblem(await post('/upload/small', bytes(2048)), 413, 'payload_too_large')
    expect(upstreamHits).toBe(before)
  })

  test('a chunked body over the limit is a 413', async () => {
    await expectProblem(await post('/upload/small', chunked(bytes(4096), 8)), 413, 'payload_too_large')
  })

  test('a raw Transfer-Encoding: chunked body (no Content-Length) is counted while streaming', async () => {
    const chunk = 'a'.repeat(512)
    const frame = (n: number) => `${Array.from({ length: n }, () => `200\r\n${chunk}\r\n`).join('')}0\r\n\r\n`
    const head = (n: number) =>
      `POST /upload/small HTTP/1.1\r\nHost: ${new URL(gw.url).host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${frame(n)}`
    expectRawProblem(parseRaw(await rawRequest(gw.url, head(4))), 413, 'payload_too_large')
    const ok = parseRaw(await rawRequest(gw.url, head(2)))
    expect(ok.status).toBe(200)
    expect(JSON.parse(ok.body)).toEqual({ path: '/upload/small', length: 1024, sum: (97 * 1024) % 65_521 })
  })

  test('a body at the limit passes intact, with Content-Length or chunked', async () => {
    const data = bytes(1024, 3)
    const res = await post('/upload/small', data)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ path: '/upload/small', length: 1024, sum: checksum(data) })
    const streamed = await post('/upload/small', chunked(data, 4))
    expect(streamed.status).toBe(200)
    expect(await streamed.json()).toEqual({ path: '/upload/small', length: 1024, sum: checksum(data) })
  })

  test('a defaults limit applies to a route without its own', async () => {
    await expectProblem(await post('/upload/default', bytes(100 * 1024)), 413, 'payload_too_large')
    await expectProblem(await post('/upload/default', chunked(bytes(100 * 1024), 10)), 413, 'payload_too_large')
    const data = bytes(60 * 1024, 5)
    const res = await post('/upload/default', chunked(data, 6))
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ path: '/upload/default', length: 60 * 1024, sum: checksum(data) })
  })
})

describe('status', () => {
  test('deprecated since/sunset: exact Deprecation and Sunset headers, the request still served', async () => {
    const res = await gw.fetch('/life/deprecated')
    expect(res.status).toBe(200)
    expect(res.headers.get('deprecation')).toBe('@1735689600')
    expect(res.headers.get('sunset')).toBe('Wed, 30 Jun 2027 00:00:00 GMT')
    expect(((await res.json()) as Echo).path).toBe('/life/deprecated')
  })

  test('deprecated since an RFC 3339 timestamp', async () => {
    const res = await gw.fetch('/life/deprecated-ts')
    expect(res.headers.get('deprecation')).toBe('@1772366400')
    expect(res.headers.get('sunset')).toBeNull()
    expect(await res.text()).toBe('old')
  })

  test('deprecated without since is Deprecation: true', async () => {
    const res = await gw.fetch('/life/deprecated-plain')
    expect(res.headers.get('deprecation')).toBe('true')
    expect(res.headers.get('sunset')).toBeNull()
  })

  test('blocked is a 503 blocked, without calling the upstream', async () => {
    const before = upstreamHits
    await expectProblem(await gw.fetch('/life/blocked'), 503, 'blocked')
    expect(upstreamHits).toBe(before)
  })

  test('retired is a 410 retired', async () => {
    await expectProblem(await gw.fetch('/life/retired'), 410, 'retired')
  })
})

describe('defaults', () => {
  test('a defaults response header is on every successful route', async () => {
    for (const path of ['/ip/allow-local', '/life/deprecated', '/life/deprecated-plain']) {
      expect((await gw.fetch(path)).headers.get('x-defaults')).toBe('yes')
    }
  })
})
