// Framing is hop-by-hop: the client gets the upstream's bytes whole, framed either by
// Content-Length or chunked, never both. (Bun 1.4 re-frames a body that is still streaming
// as chunked even when the upstream declared its length: oven-sh/bun#10507.)
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { policyDir, rawRequest, removeDir, startGateway, type RunningGateway } from '../helpers/gateway.ts'

let gw: RunningGateway
let dir: string
let tcp: Bun.TCPSocketListener<undefined>
let upUrl: string

// A raw HTTP/1.1 upstream (Bun.serve would turn a slow stream into chunked framing itself):
// 2 x 4000 bytes, 30 ms apart, with Content-Length declared up front, or chunked on /chunked.
function startRawUpstream(): void {
  tcp = Bun.listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      async data(socket, data) {
        const path = data.toString().split(' ')[1]!
        if (path.endsWith('/whole')) {
          socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nwhole')
          return void socket.end()
        }
        const chunked = path.endsWith('/chunked')
        const part = (c: string) => c.repeat(4000)
        if (chunked) {
          socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n')
          socket.write(`fa0\r\n${part('a')}\r\n`)
          await Bun.sleep(30)
          socket.write(`fa0\r\n${part('b')}\r\n0\r\n\r\n`)
        } else {
          socket.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8000\r\nConnection: close\r\n\r\n${part('a')}`)
          await Bun.sleep(30)
          socket.write(part('b'))
        }
        socket.end()
      },
    },
  })
  upUrl = `http://127.0.0.1:${tcp.port}`
}

beforeAll(async () => {
  startRawUpstream()
  dir = policyDir({
    'main.policy': `
upstream rr { target ${upUrl} }
upstream lc { target ${upUrl}; target ${upUrl}/other; balance least-conn }
upstream retried { target ${upUrl}; retry 1 on 502 }
match GET /rr/{p} { proxy rr }
match GET /lc/{p} { proxy lc }
match GET /retried/{p} { proxy retried }
match GET /decorated/{p} {
  status deprecated
  set response header X-Extra = "1"
  remove response header Content-Type
  proxy rr
}
`,
  })
  gw = await startGateway(dir)
})
afterAll(async () => {
  await gw?.stop()
  tcp?.stop(true)
  removeDir(dir)
})

// The body as the client decodes it, and whether the head named both framings.
function decode(raw: string): { both: boolean; body: string } {
  const at = raw.indexOf('\r\n\r\n')
  const lines = raw.slice(0, at).toLowerCase().split('\r\n')
  const length = lines.find((l) => l.startsWith('content-length:'))
  const chunked = lines.some((l) => l.startsWith('transfer-encoding:') && l.includes('chunked'))
  let rest = raw.slice(at + 4)
  if (!chunked) return { both: false, body: length ? rest.slice(0, Number(length.slice(15))) : rest }
  let body = ''
  for (;;) {
    const nl = rest.indexOf('\r\n')
    const size = parseInt(rest.slice(0, nl), 16)
    if (!size) break
    body += rest.slice(nl + 2, nl + 2 + size)
    rest = rest.slice(nl + 2 + size + 2)
  }
  return { both: length !== undefined, body }
}

test.each(['/rr/x', '/lc/x', '/retried/x', '/decorated/x', '/rr/chunked'])('%s arrives whole with one framing', async (path) => {
  const raw = await rawRequest(gw.url, `GET ${path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`)
  expect(raw).toStartWith('HTTP/1.1 200')
  expect(decode(raw)).toEqual({ both: false, body: 'a'.repeat(4000) + 'b'.repeat(4000) })
})

test('a length declared by the upstream is kept when its body has arrived', async () => {
  const res = await gw.fetch('/rr/whole')
  expect(res.headers.get('content-length')).toBe('5')
  expect(await res.text()).toBe('whole')
})
