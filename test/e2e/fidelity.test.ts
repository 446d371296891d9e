// What reaches the upstream is what the client sent: no headers of the gateway's own beyond
// the forwarding set, bodies on every method, forwarding headers a client cannot forge.
// And what the client gets back: Content-Length on gateway errors, X-Request-Id on every
// answer, response headers applied in one order.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { policyDir, removeDir, startGateway, type RunningGateway } from '../helpers/gateway.ts'
import { raw, RawConnection } from '../helpers/http.ts'

let gw: RunningGateway
let dir: string
let upstream: Bun.TCPSocketListener<{ buf: Buffer }>
const seen: string[] = [] // raw requests as the upstream received them

// A raw upstream: records each request's bytes (head and body) and answers 200 "ok".
function requestLength(buf: Buffer): number {
  const end = buf.indexOf('\r\n\r\n')
  if (end === -1) return -1
  const head = buf.toString('latin1', 0, end)
  const cl = /\r\ncontent-length: *(\d+)/i.exec(head)
  if (cl) return buf.length >= end + 4 + Number(cl[1]) ? end + 4 + Number(cl[1]) : -1
  if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
    const term = buf.indexOf('\r\n0\r\n\r\n', end - 2)
    return term === -1 ? -1 : term + 7
  }
  return end + 4
}

beforeAll(async () => {
  upstream = Bun.listen<{ buf: Buffer }>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(s) {
        s.data = { buf: Buffer.alloc(0) }
      },
      data(s, d) {
        s.data.buf = Buffer.concat([s.data.buf, d])
        for (let n = requestLength(s.data.buf); n !== -1; n = requestLength(s.data.buf)) {
          seen.push(s.data.buf.toString('latin1', 0, n))
          s.data.buf = s.data.buf.subarray(n)
          s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Up: 1\r\n\r\nok')
        }
      },
    },
  })
  dir = policyDir({
    'main.policy': `
upstream up { target http://127.0.0.1:${upstream.port} }
match * /any/{rest*} { proxy up }
match GET /deprecated {
  status deprecated sunset 2030-01-01
  set response header Deprecation = "overridden"
  remove response header Sunset
  proxy up
}
match GET /deprecated-error { status deprecated; status blocked }
match GET /edited {
  set header X-Forwarded-Host = "edge.example"
  remove header X-Forwarded-Port
  set header X-A = "1"
  remove header x_a
  remove header X-B
  set header X-B = "2"
  proxy up
}
`,
  })
  gw = await startGateway(dir)
})

afterAll(async () => {
  await gw?.stop()
  upstream?.stop(true)
  removeDir(dir)
})

async function through(text: string): Promise<{ client: string; upstream: string }> {
  const before = seen.length
  const c = await RawConnection.open(gw.url)
  c.write(text)
  const res = await c.response()
  c.close()
  expect(seen.length).toBe(before + 1)
  return { client: `${res.status} ${res.body}`, upstream: seen.at(-1)! }
}

function headerNames(request: string): string[] {
  const head = request.slice(0, request.indexOf('\r\n\r\n'))
  return head
    .split('\r\n')
    .slice(1)
    .map((l) => l.slice(0, l.indexOf(':')).toLowerCase())
}

describe('request headers', () => {
  test("the upstream gets the client's headers and the forwarding set, nothing the gateway made up", async () => {
    const { upstream } = await through('GET /any/thing HTTP/1.1\r\nHost: api.test\r\nX-Custom: 1\r\n\r\n')
    expect(headerNames(upstream).sort()).toEqual(
      ['host', 'x-custom', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-proto', 'x-real-ip', 'x-request-id'].sort(),
    )
    // No Accept, User-Agent or Accept-Encoding of the gateway's own.
    expect(upstream).not.toMatch(/\r\n(accept|user-agent|accept-encoding):/i)
  })

  test('the headers a client sends keep their values, repeats and order of appearance', async () => {
    const { upstream } = await through(
      'GET /any/x HTTP/1.1\r\nHost: a\r\nAccept: text/csv\r\nUser-Agent: curl/8\r\nAccept-Encoding: br\r\nX-A: 1\r\n\r\n',
    )
    expect(upstream).toContain('\r\naccept: text/csv\r\n')
    expect(upstream).toContain('\r\nuser-agent: curl/8\r\n')
    expect(upstream).toContain('\r\naccept-encoding: br\r\n')
  })

  test('X-Real-IP, X-Forwarded-Port, X-Forwarded-Prefix and Forwarded from an untrusted client are overwritten or dropped', async () => {
    const { upstream } = await through(
      'GET /any/x HTTP/1.1\r\nHost: a\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Port: 1\r\nX-Forwarded-Prefix: /evil\r\nForwarded: for=6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n',
    )
    const port = new URL(gw.url).port
    expect(upstream).toContain('\r\nx-real-ip: 127.0.0.1\r\n')
    expect(upstream).toContain(`\r\nx-forwarded-port: ${port}\r\n`)
    expect(upstream).toContain('\r\nx-forwarded-for: 127.0.0.1\r\n')
    expect(upstream).not.toMatch(/x-forwarded-prefix|forwarded: for|6\.6\.6\.6|: 1\r\n/i)
  })
})

describe('header directives', () => {
  test('they apply in source order, over the client and over the forwarding set', async () => {
    const { upstream } = await through('GET /edited HTTP/1.1\r\nHost: a\r\nX-A: client\r\nX-B: client\r\nX_B: sneaky\r\nX-Keep: 1\r\n\r\n')
    expect(upstream).toContain('\r\nx-forwarded-host: edge.example\r\n')
    expect(upstream).not.toMatch(/x-forwarded-port/i)
    expect(upstream).not.toMatch(/\r\nx[-_]a:/i)
    expect(upstream).toContain('\r\nx-b: 2\r\n')
    expect(upstream).not.toMatch(/client|sneaky/)
    expect(upstream).toContain('\r\nx-keep: 1\r\n')
    expect(upstream.match(/\r\nx-forwarded-host:/gi)).toHaveLength(1)
  })
})

describe('request bodies', () => {
  for (const method of ['DELETE', 'OPTIONS', 'POST', 'PATCH']) {
    test(`a ${method} body is forwarded byte for byte`, async () => {
      const { upstream } = await through(
        `${method} /any/search HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"q":"x y z"}`,
      )
      expect(upstream.startsWith(`${method} /any/search HTTP/1.1\r\n`)).toBe(true)
      expect(upstream).toContain('\r\ncontent-length: 13\r\n')
      expect(upstream.endsWith('\r\n\r\n{"q":"x y z"}')).toBe(true)
    })
  }

  test('a chunked DELETE body is forwarded chunked and whole', async () => {
    const { upstream } = await through('DELETE /any/c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n')
    expect(upstream).toContain('\r\ntransfer-encoding: chunked\r\n')
    expect(upstream).not.toMatch(/content-length/i)
    const body = upstream.slice(upstream.indexOf('\r\n\r\n') + 4)
    expect(body.replace(/\r\n[0-9a-f]+\r\n|^[0-9a-f]+\r\n/g, '').replace(/\r\n$/, '')).toBe('abcde')
  })

  // Bun.serve reads GET and HEAD bodies off the connection and drops them; the gateway says so
  // rather than send the upstream a request that lost its body (or a length with no body).
  for (const framing of ['Content-Length: 13\r\n\r\n{"q":"x y z"}', 'Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n']) {
    test(`a GET body (${framing.split(':')[0]}) is a 400 that says why; the upstream is not called; the connection goes on`, async () => {
      const before = seen.length
      const c = await RawConnection.open(gw.url)
      c.write(`GET /any/search HTTP/1.1\r\nHost: a\r\n${framing}`)
      const res = await c.response()
      expect(res.status).toBe(400)
      expect(JSON.parse(res.body).detail).toContain('GET')
      c.write('GET /any/next HTTP/1.1\r\nHost: a\r\n\r\n')
      expect((await c.response()).status).toBe(200)
      c.close()
      expect(seen.length).toBe(before + 1)
      expect(seen.at(-1)!.startsWith('GET /any/next ')).toBe(true)
    })
  }

  test('a GET with Content-Length: 0 is forwarded as it is', async () => {
    const { upstream } = await through('GET /any/zero HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n')
    expect(upstream.startsWith('GET /any/zero HTTP/1.1\r\n')).toBe(true)
  })
})

describe('answers', () => {
  test('a gateway error carries Content-Length (not chunked) and X-Request-Id', async () => {
    const res = await raw(gw.url, 'GET', '/nowhere')
    expect(res.status).toBe(404)
    expect(res.header('content-length')).toBe(String(Buffer.byteLength(res.body)))
    expect(res.header('transfer-encoding')).toBeUndefined()
    expect(res.header('x-request-id')).toBe(JSON.parse(res.body).instance)
  })

  test('a proxied answer carries X-Request-Id too, equal to the access log request_id', async () => {
    const res = await raw(gw.url, 'GET', '/any/id')
    expect(res.status).toBe(200)
    const id = res.header('x-request-id')!
    expect(id.length).toBeGreaterThan(8)
    await gw.waitFor('stdout', new RegExp(`"request_id":"${id}"`))
  })

  test('headers from the access stage come first, then the response stage may change or remove them', async () => {
    const res = await raw(gw.url, 'GET', '/deprecated')
    expect(res.status).toBe(200)
    expect(res.header('deprecation')).toBe('overridden')
    expect(res.header('sunset')).toBeUndefined()
    expect(res.header('x-up')).toBe('1')
  })

  test('a gateway error still carries the headers the access stage asked for', async () => {
    const res = await raw(gw.url, 'GET', '/deprecated-error')
    expect(res.status).toBe(503)
    expect(res.header('deprecation')).toBe('true')
  })
})
