// Yardstick, not a product: a proxy with no Bun.serve and no Request/Response objects, to
// show what Bun itself can do. Inbound HTTP/1.1 over Bun.listen (request line and headers
// up to the blank line, keep-alive, pipelined requests answered in order), forwarded over
// a keep-alive pool of Bun.connect sockets (bare-raw-pool.ts), the answer written back as
// bytes re-framed with Content-Length. GET and HEAD without a body only (501 otherwise, and
// the connection is closed); no request timeouts beyond a 60 s idle limit, no hardening.
// bun bench/bare-raw-proxy.ts --upstream http://127.0.0.1:PORT [--exit-on-stdin-close]
// Prints `listening on http://127.0.0.1:PORT`.
import type { Socket } from 'bun'
import { argValue, exitWithParent } from './lifeline.ts'
import { EMPTY, upstreamPool, write, type Outbox } from './bare-raw-pool.ts'
import { CRLF2, HOP_BY_HOP } from './bare-socket-parse.ts'

const upstream = new URL(argValue('upstream', 'bare-raw-proxy'))
const forward = upstreamPool(upstream)
const MAX_HEAD = 64 * 1024

/** One request of a connection, in arrival order; `bytes` is its answer once it is there. */
interface Slot {
  bytes: Buffer | null
  connection: string // the connection header line of the answer, if any
  close: boolean
}
interface Client extends Outbox {
  buf: Buffer
  slots: Slot[]
  parsing: boolean // false after a request that ends the connection
  ending: boolean // end once the queued bytes are out
  gone: boolean
}
type Sock = Socket<Client>

/** Writes the answers that are ready, in request order; ends the connection after a closing one. */
function pump(sock: Sock): void {
  const c = sock.data
  const ready: Buffer[] = []
  while (c.slots[0]?.bytes) {
    const slot = c.slots.shift() as Slot
    ready.push(slot.bytes as Buffer)
    if (slot.close) c.ending = true
  }
  write(sock, ready.length < 2 ? ready[0] : Buffer.concat(ready)) // also flushes what waited for drain
  if (c.ending && !c.out) sock.end()
}

function answer(sock: Sock, slot: Slot, head: string, body: Buffer): void {
  if (sock.data.gone) return
  slot.bytes = Buffer.concat([Buffer.from(`${head}${slot.connection}\r\n`, 'latin1'), body])
  pump(sock)
}

function plain(sock: Sock, slot: Slot, status: string, message: string): void {
  const body = Buffer.from(`bare-raw-proxy: ${message}\n`)
  answer(sock, slot, `HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n`, body)
}

/** One request head (without the blank line): parsed, checked and forwarded. */
function request(sock: Sock, text: string): void {
  const c = sock.data
  const lines = text.split('\r\n')
  const [method = '', target = '', version = '', extra] = (lines[0] ?? '').split(' ')
  const slot: Slot = { bytes: null, connection: '', close: false }
  c.slots.push(slot)
  let keepAlive = version === 'HTTP/1.1'
  let hasBody = false
  let out = `${method} ${target} HTTP/1.1\r\nhost: ${upstream.host}\r\n`
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (name === 'connection') keepAlive = version === 'HTTP/1.1' ? !/\bclose\b/i.test(value) : /\bkeep-alive\b/i.test(value)
    else if (name === 'content-length') hasBody ||= value !== '0'
    else if (name === 'transfer-encoding') hasBody = true
    if (colon > 0 && !HOP_BY_HOP.has(name)) out += `${line}\r\n`
  }
  const bad = !target || extra !== undefined || !version.startsWith('HTTP/1.')
  const unsupported = (method !== 'GET' && method !== 'HEAD') || hasBody
  if (bad || unsupported || !keepAlive) {
    Object.assign(slot, { connection: 'connection: close\r\n', close: true })
    c.parsing = false
  } else if (version === 'HTTP/1.0') slot.connection = 'connection: keep-alive\r\n'
  if (bad) return plain(sock, slot, '400 Bad Request', 'malformed request line')
  if (unsupported) return plain(sock, slot, '501 Not Implemented', 'GET and HEAD without a body only')
  forward(Buffer.from(`${out}\r\n`, 'latin1'), method === 'HEAD', (err, head, body) => {
    if (err) plain(sock, slot, '502 Bad Gateway', err.message)
    else answer(sock, slot, head, body)
  })
}

function onData(sock: Sock, chunk: Buffer): void {
  const c = sock.data
  if (!c.parsing) return // what follows a closing request is dropped
  c.buf = c.buf.length ? Buffer.concat([c.buf, chunk]) : chunk // Bun hands over a fresh Buffer each time
  while (c.parsing) {
    const end = c.buf.indexOf(CRLF2)
    if (end < 0) {
      if (c.buf.length <= MAX_HEAD) return
      const slot: Slot = { bytes: null, connection: 'connection: close\r\n', close: true }
      c.slots.push(slot)
      c.parsing = false
      return plain(sock, slot, '431 Request Header Fields Too Large', 'request head over 64 KiB')
    }
    const text = c.buf.toString('latin1', 0, end)
    c.buf = c.buf.subarray(end + 4)
    request(sock, text)
  }
  c.buf = EMPTY
}

const listener = Bun.listen<Client>({
  hostname: '127.0.0.1',
  port: 0,
  socket: {
    open(sock) {
      sock.data = { out: null, buf: EMPTY, slots: [], parsing: true, ending: false, gone: false }
      sock.timeout(60)
    },
    data: onData,
    drain: pump,
    close(sock) {
      Object.assign(sock.data, { gone: true, slots: [], out: null })
    },
    error(sock) {
      sock.data.gone = true
    },
    timeout(sock) {
      sock.end()
    },
  },
})

console.log(`listening on http://127.0.0.1:${listener.port}`)
exitWithParent(() => listener.stop(true))
