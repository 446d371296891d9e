// One answer per request: when the gateway answers before it has read the request body
// (405, 404, 413, a mock, an upstream that answered first), the body's bytes must never be
// taken for a next request or draw a second answer on the same connection.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { RawConnection } from '../helpers/http.ts'

let gw: RunningGateway
let up: Upstream
let dir: string
let early: Bun.TCPSocketListener<undefined>

const count = (text: string) => text.split('HTTP/1.1 ').length - 1

beforeAll(async () => {
  up = startUpstream()
  // An upstream that answers 413 to the head of a request and closes, reading nothing.
  early = Bun.listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      data(socket) {
        socket.write('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope')
        socket.end()
      },
    },
  })
  dir = policyDir({
    'main.policy': `
upstream up { target ${up.url} }
match GET /only-get { proxy up }
match POST /limited { limit body 10b; proxy up }
match POST /mock { respond 200 text "mocked" }
match POST /early { proxy http://127.0.0.1:${early.port} }
`,
  })
  gw = await startGateway(dir)
})

afterAll(async () => {
  await gw?.stop()
  up?.stop()
  early?.stop(true)
  removeDir(dir)
})

const head = (method: string, path: string, lines: string[]) => [`${method} ${path} HTTP/1.1`, `Host: x`, ...lines, '', ''].join('\r\n')

describe('an early answer to a body it did not read', () => {
  test('a malformed chunked body in the same packet: exactly one answer, then the connection closes', async () => {
    const c = await RawConnection.open(gw.url)
    c.write(head('POST', '/only-get', ['Transfer-Encoding: chunked']) + 'zz\r\nnot a chunk\r\n')
    const all = await c.rest()
    expect(count(all)).toBe(1)
  })

  test('a malformed chunked body that arrives after the answer: one answer', async () => {
    const c = await RawConnection.open(gw.url)
    c.write(head('POST', '/only-get', ['Transfer-Encoding: chunked']) + '5\r\nhello\r\n')
    c.write('zz\r\nstill not a chunk\r\n')
    const all = await c.rest()
    expect(count(all)).toBe(1)
  })

  test('a small well-formed chunked body is read and dropped: 405, and the connection serves the next request', async () => {
    const c = await RawConnection.open(gw.url)
    c.write(head('POST', '/only-get', ['Transfer-Encoding: chunked']) + '5\r\nhello\r\n0\r\n\r\n')
    const first = await c.response()
    expect(first.status).toBe(405)
    expect(first.header('connection')).not.toBe('close')
    c.write(head('GET', '/only-get', []))
    const second = await c.response()
    expect(second.status).toBe(200)
    expect(JSON.parse(second.body).path).toBe('/only-get')
    c.close()
  })

  test('a small Content-Length body is read and dropped: 404, then the next request on the same connection', async () => {
    const c = await RawConnection.open(gw.url)
    c.write(head('POST', '/nowhere', ['Content-Length: 5']) + 'hello')
    expect((await c.response()).status).toBe(404)
    c.write(head('GET', '/only-get', []))
    expect((await c.response()).status).toBe(200)
    c.close()
  })

  test('a Content-Length body that never fully arrives: the answer says Connection: close and the connection closes', async () => {
    const c = await RawConnection.open(gw.url)
    c.write(head('POST', '/only-get', ['Content-Length: 100000']) + 'only a little')
    const res = await c.response()
    expect(res.status).toBe(405)
    expect(res.header('connection')).toBe('close')
    expect(await c.rest()).toBe('')
  })

  test('a large body (over 64 KiB) is not read: 413 from limit body, Connection: close', async () => {
    const c = await RawConnection.open(gw.url)
    c.write(head('POST', '/limited', ['Content-Length: 200000']) + 'x'.repeat(200_000))
    const res = await c.response()
    expect(res.status).toBe(413)
    expect(res.header('gateway-error')).toBe('payload_too_large')
    expect(res.header('connection')).toBe('close')
    expect(count(await c.rest())).toBe(0)
  })

  test('a pipelined request hidden in an unread body never gets an answer of its own', async () => {
    const c = await RawConnection.open(gw.url)
    const smuggled = head('GET', '/only-get', [])
    c.write(head('POST', '/only-get', ['Content-Length: 100000']) + smuggled)
    const res = await c.response()
    expect(res.status).toBe(405)
    expect(count(await c.rest())).toBe(0)
  })

  test('a mock (respond) answers without needing the body, and the connection stays usable', async () => {
    const c = await RawConnection.open(gw.url)
    c.write(head('POST', '/mock', ['Content-Length: 3']) + 'abc')
    const res = await c.response()
    expect(res.status).toBe(200)
    expect(res.body).toBe('mocked')
    c.write(head('POST', '/mock', ['Content-Length: 3']) + 'def')
    expect((await c.response()).body).toBe('mocked')
    c.close()
  })

  test('an upstream that answers before reading the body: its answer, then the client connection closes', async () => {
    const c = await RawConnection.open(gw.url)
    c.write(head('POST', '/early', ['Content-Length: 1000000']) + 'y'.repeat(1000))
    const res = await c.response()
    expect(res.status).toBe(413)
    expect(res.body).toBe('nope')
    expect(res.header('connection')).toBe('close')
    expect(count(await c.rest())).toBe(0)
  })
})
