// Yardstick, not a product: a Bun proxy with its own minimal HTTP/1.1 keep-alive pool
// over Bun.connect. Enough for the bench's GET: it parses the status line, headers and a
// Content-Length, chunked or read-to-close body, and answers new Response(bytes, …).
// No request bodies (501), no pipelining, no 1xx/HEAD handling, no pool limit.
// bun bench/bare-socket-proxy.ts --upstream http://127.0.0.1:PORT [--exit-on-stdin-close]
// Prints `listening on http://127.0.0.1:PORT`.
import type { Socket } from 'bun'
import { argValue, exitWithParent } from './lifeline.ts'
import { CRLF2, wholeBody, HOP_BY_HOP, parseHead, type Head } from './bare-socket-parse.ts'

const upstream = new URL(argValue('upstream', 'bare-socket-proxy'))

type Reply = Pick<Head, 'status' | 'headers'> & { body: Buffer }
interface Conn {
  buf: Buffer
  head: Head | null
  out: Buffer | null
  reused: boolean
  waiter: { resolve: (r: Reply) => void; reject: (e: Error) => void } | null
}
type Sock = Socket<Conn>

const idle: Sock[] = []

function finish(sock: Sock, head: Head, body: Buffer, rest: Buffer): void {
  const c = sock.data
  const waiter = c.waiter
  Object.assign(c, { head: null, waiter: null, buf: Buffer.alloc(0) })
  if (head.keepAlive && rest.length === 0) idle.push(sock)
  else sock.end()
  waiter?.resolve({ status: head.status, headers: head.headers, body })
}

function onData(sock: Sock, chunk: Buffer): void {
  try {
    read(sock, chunk)
  } catch (err) {
    fail(sock, err as Error)
  }
}

function fail(sock: Sock, err: Error): void {
  onGone(sock, err)
  sock.end()
}

function read(sock: Sock, chunk: Buffer): void {
  const c = sock.data
  c.buf = c.buf.length ? Buffer.concat([c.buf, chunk]) : Buffer.from(chunk)
  if (!c.head) {
    const end = c.buf.indexOf(CRLF2)
    if (end < 0) return
    c.head = parseHead(c.buf.toString('latin1', 0, end))
    c.buf = c.buf.subarray(end + 4)
  }
  const whole = wholeBody(c.head, c.buf)
  if (whole) finish(sock, c.head, whole[0], whole[1])
}

function onGone(sock: Sock, err: Error): void {
  const i = idle.indexOf(sock)
  if (i >= 0) idle.splice(i, 1)
  const c = sock.data
  if (c.head?.length === 'close' && c.waiter) return finish(sock, c.head, c.buf, Buffer.alloc(0))
  c.waiter?.reject(Object.assign(err, { retry: c.reused && !c.head && c.buf.length === 0 }))
  c.waiter = null
}

function flush(sock: Sock): void {
  const out = sock.data.out
  const n = out ? sock.write(out) : 0
  sock.data.out = out && n < out.length ? out.subarray(n) : null
}

function connect(): Promise<Sock> {
  return Bun.connect<Conn>({
    hostname: upstream.hostname,
    port: Number(upstream.port),
    data: { buf: Buffer.alloc(0), head: null, out: null, reused: false, waiter: null },
    socket: {
      data: onData,
      drain: flush,
      close: (sock) => onGone(sock, new Error('upstream closed the connection')),
      error: (sock, err) => onGone(sock, err),
      timeout: (sock) => fail(sock, new Error('upstream timed out')),
    },
  })
}

async function send(request: Buffer): Promise<Reply> {
  const reused = idle.pop()
  const sock = reused ?? (await connect())
  sock.timeout(5)
  sock.data.reused = reused !== undefined
  const reply = new Promise<Reply>((resolve, reject) => (sock.data.waiter = { resolve, reject }))
  sock.data.out = request
  flush(sock)
  try {
    return await reply
  } catch (err) {
    if ((err as { retry?: boolean }).retry) return send(request) // a stale idle connection
    throw err
  }
}

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req) {
    if (req.method !== 'GET') return new Response('bare-socket-proxy: GET only\n', { status: 501 })
    const path = req.url.slice(req.url.indexOf('/', req.url.indexOf('//') + 2))
    let head = `GET ${path} HTTP/1.1\r\nhost: ${upstream.host}\r\n`
    for (const [name, value] of req.headers) if (!HOP_BY_HOP.has(name)) head += `${name}: ${value}\r\n`
    try {
      const reply = await send(Buffer.from(`${head}\r\n`, 'latin1'))
      return new Response(reply.body, { status: reply.status, headers: reply.headers })
    } catch (err) {
      return new Response(`bare-socket-proxy: ${(err as Error).message}\n`, { status: 502 })
    }
  },
})

console.log(`listening on http://127.0.0.1:${server.port}`)
exitWithParent(() => server.stop(true))
