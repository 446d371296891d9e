// The upstream side of bench/bare-raw-proxy.ts: a keep-alive pool of Bun.connect sockets.
// Each answer comes back as a re-framed head (status line and headers, hop-by-hop ones
// dropped, content-length of the decoded body) plus the body bytes. Yardstick, not a
// product: lenient, unhardened, no pool limit, no 1xx.
import type { Socket } from 'bun'
import { CRLF2, wholeBody, parseHead, type Head } from './bare-socket-parse.ts'

export const EMPTY = Buffer.alloc(0)

export interface Outbox {
  out: Buffer | null
}

/** Writes `more` after anything still queued; what the socket does not take waits for `drain`. */
export function write<T extends Outbox>(sock: Socket<T>, more?: Buffer): void {
  const c = sock.data
  if (more) c.out = c.out ? Buffer.concat([c.out, more]) : more
  if (!c.out) return
  const n = sock.write(c.out)
  c.out = n >= 0 && n < c.out.length ? c.out.subarray(n) : null
}

/** `head` is the status line and header lines, each ending in \r\n, without the blank line. */
export type Done = (err: Error | null, head: string, body: Buffer) => void

interface Conn extends Outbox {
  buf: Buffer
  head: Head | null
  status: string
  bodiless: boolean
  reused: boolean
  request: Buffer | null
  done: Done | null
}
type Sock = Socket<Conn>

/** `forward(request, bodiless, done)`: bodiless for HEAD (the answer has no body whatever its framing says). */
export function upstreamPool(upstream: URL): (request: Buffer, bodiless: boolean, done: Done) => void {
  const idle: Sock[] = []

  function finish(sock: Sock, head: Head, body: Buffer, rest: Buffer): void {
    const c = sock.data
    const done = c.done
    let text = `HTTP/1.1 ${c.status}\r\n`
    for (const [name, value] of head.headers) text += `${name}: ${value}\r\n`
    const length = c.bodiless ? head.length : body.length
    if (typeof length === 'number') text += `content-length: ${length}\r\n`
    Object.assign(c, { head: null, done: null, request: null, buf: EMPTY })
    if (head.keepAlive && rest.length === 0) idle.push(sock)
    else sock.end()
    done?.(null, text, body)
  }

  function read(sock: Sock, chunk: Buffer): void {
    const c = sock.data
    c.buf = c.buf.length ? Buffer.concat([c.buf, chunk]) : chunk // Bun hands over a fresh Buffer each time
    if (!c.head) {
      const end = c.buf.indexOf(CRLF2)
      if (end < 0) return
      const text = c.buf.toString('latin1', 0, end)
      const head = (c.head = parseHead(text))
      const eol = text.indexOf('\r\n')
      c.status = `${head.status} ${(eol < 0 ? text : text.slice(0, eol)).slice(13)}` // code and reason phrase
      c.buf = c.buf.subarray(end + 4)
      c.bodiless ||= head.status === 204 || head.status === 304
      if (c.bodiless) {
        if (head.length === 'close') head.keepAlive = text.startsWith('HTTP/1.1') && !/\r\nconnection:[^\r]*close/i.test(text)
        return finish(sock, head, EMPTY, c.buf)
      }
    }
    const whole = wholeBody(c.head, c.buf)
    if (whole) finish(sock, c.head, whole[0], whole[1])
  }

  function onGone(sock: Sock, err: Error): void {
    const i = idle.indexOf(sock)
    if (i >= 0) idle.splice(i, 1)
    const c = sock.data
    const done = c.done
    if (!done) return
    if (c.head?.length === 'close') return finish(sock, c.head, c.buf, EMPTY)
    c.done = null
    if (c.reused && c.request && !c.head && c.buf.length === 0)
      forward(c.request, c.bodiless, done) // a stale idle connection
    else done(err, '', EMPTY)
  }

  function fail(sock: Sock, err: Error): void {
    onGone(sock, err)
    sock.end()
  }

  function start(sock: Sock, request: Buffer, bodiless: boolean, done: Done, reused: boolean): void {
    Object.assign(sock.data, { request, bodiless, done, reused })
    sock.timeout(5)
    write(sock, request)
  }

  function forward(request: Buffer, bodiless: boolean, done: Done): void {
    const sock = idle.pop()
    if (sock) return start(sock, request, bodiless, done, true)
    Bun.connect<Conn>({
      hostname: upstream.hostname,
      port: Number(upstream.port),
      data: { out: null, buf: EMPTY, head: null, status: '', bodiless: false, reused: false, request: null, done: null },
      socket: {
        data(s, chunk) {
          try {
            read(s, chunk)
          } catch (err) {
            fail(s, err as Error)
          }
        },
        drain: (s) => write(s),
        close: (s) => onGone(s, new Error('upstream closed the connection')),
        error: (s, err) => onGone(s, err),
        timeout: (s) => fail(s, new Error('upstream timed out')),
      },
    }).then(
      (s) => start(s, request, bodiless, done, false),
      (err: Error) => done(err, '', EMPTY),
    )
  }

  return forward
}
