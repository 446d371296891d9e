// The upstream client over Bun.connect: keep-alive pools per origin (shared by every program,
// so reloads keep warm connections), requests written byte for byte as the client sent them,
// answers read by ResponseReader and streamed back with backpressure both ways.
import type { Socket } from 'bun'
import { UpstreamFailure, type ExchangeOptions, type ExchangeResult, type FailureKind, type Origin } from './client.ts'
import { watchDeadline, unwatchDeadline, type Timed } from './deadlines.ts'
import { ResponseReader, type ResponseHead, type ResponseSink } from './http1.ts'
import { responseHeaders } from './response-headers.ts'

// Idle connections older than this are closed rather than reused: upstreams commonly close
// theirs after 5 s (Node) or more; a reused connection the upstream closed meanwhile is retried.
const POOL_IDLE_MS = 4_000
const MAX_IDLE_PER_ORIGIN = 256
const STREAM_HIGH_WATER = 64 * 1024

interface Conn {
  socket: Socket<Conn>
  origin: Origin
  ex: Exchange | null
  idleSince: number
  reused: boolean
  open: boolean
  pending: Uint8Array | null // bytes the socket did not take yet
  drained: (() => void) | null
  ready: ((err: Error | null) => void) | null // waiting for the TLS handshake
}

const pools = new Map<string, Conn[]>()
let sweeper: ReturnType<typeof setInterval> | null = null

function sweep(): void {
  const old = performance.now() - POOL_IDLE_MS
  let any = false
  for (const idle of pools.values()) {
    while (idle.length > 0 && idle[0]!.idleSince < old) idle.shift()!.socket.end()
    any ||= idle.length > 0
  }
  if (!any && sweeper) {
    clearInterval(sweeper)
    sweeper = null
  }
}

function release(conn: Conn): void {
  conn.ex = null
  let idle = pools.get(conn.origin.key)
  if (!idle) pools.set(conn.origin.key, (idle = []))
  if (idle.length >= MAX_IDLE_PER_ORIGIN) return void conn.socket.end()
  conn.idleSince = performance.now()
  conn.reused = true
  idle.push(conn)
  if (!sweeper) {
    sweeper = setInterval(sweep, 1_000)
    sweeper.unref()
  }
}

function take(origin: Origin): Conn | null {
  const idle = pools.get(origin.key)
  const fresh = performance.now() - POOL_IDLE_MS
  while (idle && idle.length > 0) {
    const conn = idle.pop()!
    if (conn.open && conn.idleSince >= fresh) return conn
    conn.socket.end()
  }
  return null
}

function forget(conn: Conn): void {
  conn.open = false
  const idle = pools.get(conn.origin.key)
  const i = idle ? idle.indexOf(conn) : -1
  if (i !== -1) idle!.splice(i, 1)
}

const handlers = {
  data(s: Socket<Conn>, data: Buffer) {
    const ex = s.data.ex
    if (ex) return ex.onData(data)
    // Bytes on an idle connection answer nothing we asked: never let them answer the next request.
    forget(s.data)
    s.terminate()
  },
  drain(s: Socket<Conn>) {
    const conn = s.data
    if (conn.pending) {
      const p = conn.pending
      conn.pending = null
      write(conn, p)
    }
    if (!conn.pending && conn.drained) {
      const d = conn.drained
      conn.drained = null
      d()
    }
  },
  close(s: Socket<Conn>) {
    forget(s.data)
    s.data.ex?.onClose()
  },
  end(s: Socket<Conn>) {
    forget(s.data)
    s.data.ex?.onClose()
    s.end()
  },
  handshake(s: Socket<Conn>, ok: boolean, err: Error | null) {
    const ready = s.data.ready
    s.data.ready = null
    if (ok && !err) return ready?.(null)
    ready?.(new Error(`TLS handshake failed: ${err?.message ?? 'refused'}`))
    s.terminate()
  },
  error(s: Socket<Conn>) {
    forget(s.data)
    s.data.ex?.onClose()
  },
}

// Writes what the socket takes now and keeps the rest for `drain`; false when some is kept.
// Strings here are ASCII (see requestHead), so their length is their byte count.
function write(conn: Conn, data: string | Uint8Array): boolean {
  if (conn.pending) {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data
    const merged = new Uint8Array(conn.pending.length + bytes.length)
    merged.set(conn.pending)
    merged.set(bytes, conn.pending.length)
    conn.pending = merged
    return false
  }
  const n = conn.socket.write(data)
  const length = typeof data === 'string' ? data.length : data.byteLength
  if (n >= length) return true
  conn.pending = (typeof data === 'string' ? Buffer.from(data, 'latin1') : data).subarray(Math.max(n, 0))
  return false
}

function whenDrained(conn: Conn): Promise<void> {
  if (!conn.pending) return Promise.resolve()
  return new Promise((resolve) => (conn.drained = resolve))
}

// Resolves once the connection can carry a request: after the TLS handshake for https.
function connect(origin: Origin, ex: Exchange): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const conn = { origin, ex, idleSince: 0, reused: false, open: true, pending: null, drained: null, ready: null } as unknown as Conn
    ex.connecting = conn
    if (origin.tls) conn.ready = (err) => (err ? reject(err) : resolve(conn))
    Bun.connect<Conn>({
      hostname: origin.hostname,
      port: origin.port,
      tls: origin.tls ? { serverName: origin.hostname } : undefined,
      data: conn,
      socket: handlers,
    }).then((socket) => {
      conn.socket = socket
      if (ex.isDone) socket.terminate()
      else if (!origin.tls) resolve(conn)
    }, reject)
  })
}

const CRLF = new Uint8Array([13, 10])
const LAST_CHUNK = new TextEncoder().encode('0\r\n\r\n')

const NOT_ASCII = /[^\x00-\x7f]/

// Header values are bytes (Latin-1); plain ASCII is written as the string it is.
function requestHead(o: ExchangeOptions): string | Uint8Array {
  let head = `${o.method} ${o.target} HTTP/1.1\r\nhost: ${o.origin.hostHeader}\r\n${o.headerLines}`
  if (o.body instanceof Uint8Array) {
    if (o.length === null) head += `content-length: ${o.body.byteLength}\r\n`
  } else if (o.body && o.length === null) head += 'transfer-encoding: chunked\r\n'
  head += '\r\n'
  return NOT_ASCII.test(head) ? Buffer.from(head, 'latin1') : head
}

type Phase = 'connect' | 'send' | 'wait' | 'body' | 'done'

// The exchange is its reader's sink and its own result (fewer objects per request).
class Exchange implements Timed, ResponseSink, ExchangeResult {
  deadline = Infinity
  deadlineSlot = -1
  private phase: Phase = 'connect'
  private conn: Conn | null = null
  connecting: Conn | null = null // made for this exchange, not yet carrying it
  private readonly reader: ResponseReader
  private answerHead: ResponseHead | null = null
  private early: Buffer[] | null = null // body bytes that came with the head
  private controller: ReadableStreamDefaultController<Uint8Array> | null = null
  private paused = false
  private sent = false // the whole request is on the wire
  private abandoned = false
  private bodyReader: { cancel(): Promise<void> } | null = null
  private inBytes = 0
  private gotBytes = false
  private bytesOut = 0
  private settled = false
  private responded = false
  private bodyEnded = false
  private readonly answer = Promise.withResolvers<ExchangeResult>()

  constructor(private readonly o: ExchangeOptions) {
    this.reader = new ResponseReader(this)
    this.reader.noBody = o.method === 'HEAD'
  }

  run(conn: Conn | null): Promise<ExchangeResult> {
    watchDeadline(this)
    if (conn) this.attach(conn)
    else {
      this.deadline = performance.now() + this.o.timeouts.connectMs
      connect(this.o.origin, this).then(
        (c) => {
          if (this.phase === 'connect') this.attach(c)
          else c.socket.end()
        },
        (err: Error) => this.fail('connect', `cannot connect to ${this.o.origin.key}: ${err.message}`),
      )
    }
    return this.answer.promise
  }

  response!: Response
  bytesIn(): number {
    return this.inBytes
  }
  bodyAbandoned(): boolean {
    return this.abandoned
  }
  ended(): boolean {
    return this.phase === 'done' || this.bodyEnded
  }

  get isDone(): boolean {
    return this.phase === 'done'
  }

  private attach(conn: Conn): void {
    this.conn = conn
    conn.ex = this
    this.phase = 'send'
    this.deadline = performance.now() + this.o.timeouts.idleMs
    const head = requestHead(this.o)
    const body = this.o.body
    if (body instanceof Uint8Array) {
      this.inBytes = body.byteLength
      write(conn, Buffer.concat([typeof head === 'string' ? Buffer.from(head, 'latin1') : head, body]))
      this.requestSent()
    } else {
      write(conn, head)
      if (body) void this.pump(body)
      else this.requestSent()
    }
  }

  private requestSent(): void {
    this.sent = true
    if (this.phase === 'send') {
      this.phase = 'wait'
      this.deadline = performance.now() + this.o.timeouts.headersMs
    }
  }

  // The client's body, as it arrives: counted, limited, framed, written with backpressure.
  private async pump(body: ReadableStream<Uint8Array>): Promise<void> {
    const conn = this.conn!
    const chunked = this.o.length === null
    const reader = (this.bodyReader = body.getReader())
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (this.phase === 'done' || (this.phase === 'body' && this.bodyEnded)) return
        if (done) break
        this.inBytes += value.byteLength
        if (this.inBytes > this.o.bodyLimit) return this.fail('too_large', 'the request body is over the limit')
        if (this.phase === 'send') this.deadline = performance.now() + this.o.timeouts.idleMs
        if (value.byteLength === 0) continue
        const ok = write(conn, chunked ? Buffer.concat([Buffer.from(`${value.byteLength.toString(16)}\r\n`), value, CRLF]) : value)
        if (!ok) await whenDrained(conn)
      }
      if (this.o.length !== null && this.inBytes !== this.o.length)
        return this.fail('client_body', 'the request body ended before its Content-Length')
      if (chunked) write(conn, LAST_CHUNK)
      this.bodyReader = null
      this.requestSent()
    } catch {
      if (this.phase !== 'done' && !this.bodyEnded) this.fail('client_body', 'the client stopped sending the request body')
    }
  }

  onData(data: Buffer): void {
    this.gotBytes = true
    if (this.phase === 'body' && !this.paused) this.deadline = performance.now() + this.o.timeouts.idleMs
    this.reader.feed(data)
    // A whole answer in the first bytes: hand it over as one buffer (kept Content-Length, no stream).
    if (this.answerHead && !this.settled) this.settle()
  }

  head(h: ResponseHead): boolean {
    this.answerHead = h
    this.early = []
    if (h.upgrade) {
      this.fail('protocol', 'the upstream switched protocols on a request that did not ask for it')
      return false
    }
    this.phase = 'body'
    this.deadline = performance.now() + this.o.timeouts.idleMs
    return true
  }

  body(chunk: Buffer): void {
    this.bytesOut += chunk.length
    if (this.early) this.early.push(chunk)
    else {
      this.controller!.enqueue(chunk)
      if (this.controller!.desiredSize! <= 0 && !this.paused) {
        this.paused = true
        this.deadline = Infinity // the client is slow, not the upstream
        this.conn!.socket.pause()
      }
    }
  }

  end(): void {
    this.bodyEnded = true
    if (this.controller) this.controller.close()
    if (this.settled) this.finish(null)
  }

  private settle(): void {
    this.settled = true
    const h = this.answerHead!
    const headers = responseHeaders(h.fields, this.bodyEnded, this.o.requestId ?? null)
    let body: Uint8Array | ReadableStream<Uint8Array> | null = null
    const early = this.early!
    this.early = null
    if (this.bodyEnded) {
      if (early.length > 0) body = early.length === 1 ? early[0]! : Buffer.concat(early)
    } else {
      body = new ReadableStream<Uint8Array>(
        {
          start: (c) => {
            this.controller = c
            for (const chunk of early) c.enqueue(chunk)
          },
          pull: () => {
            if (this.paused && this.conn) {
              this.paused = false
              this.deadline = performance.now() + this.o.timeouts.idleMs
              this.conn.socket.resume()
            }
          },
          cancel: () => this.finish('cancelled'),
        },
        { highWaterMark: STREAM_HIGH_WATER, size: (c) => c?.byteLength ?? 0 },
      )
    }
    let response: Response
    try {
      response = new Response(body, { status: h.status, statusText: h.reason, headers })
    } catch {
      return this.fail('protocol', `the upstream answered with status ${h.status}`)
    }
    this.responded = true
    this.response = response
    this.answer.resolve(this)
    if (this.bodyEnded) this.finish(null)
  }

  onClose(): void {
    if (this.phase === 'done') return
    if (this.phase === 'connect') return this.fail('connect', `the connection to ${this.o.origin.key} closed while it was being made`)
    this.reader.closed()
    if (!this.bodyEnded) this.fail('reset', `the connection to ${this.o.origin.key} closed before the answer ended`)
  }

  expire(): void {
    if (this.phase === 'connect') this.fail('connect_timeout', `no connection to ${this.o.origin.key} within ${this.o.timeouts.connectMs} ms`)
    else if (this.phase === 'wait') this.fail('timeout', `no answer within ${this.o.timeouts.headersMs} ms`)
    else this.fail('timeout', `the upstream was silent for ${this.o.timeouts.idleMs} ms`)
  }

  failed(reason: string): void {
    this.fail('protocol', `upstream answered with malformed HTTP: ${reason}`)
  }

  private fail(kind: FailureKind, message: string): void {
    if (this.phase === 'done') return
    const beforeAnswer = this.answerHead === null
    if (!this.settled) {
      this.answer.reject(new UpstreamFailure(kind, message, beforeAnswer && !this.gotBytes))
      this.settled = true
    } else {
      // The answer is cut: the client never sees it end. The reason goes to the access log
      // (onBodyEnd), not to Bun, which would print an Error's stack for a stream that errors.
      this.controller?.error(undefined)
    }
    this.finish(kind)
  }

  // The end of the exchange: the connection goes back to the pool only when both messages
  // ended cleanly and nothing extra came; otherwise it is closed.
  private finish(failure: FailureKind | null): void {
    if (this.phase === 'done') return
    this.phase = 'done'
    unwatchDeadline(this)
    const conn = this.conn
    // A connection still being made (a TLS handshake that never ends) is closed with us.
    if (!conn && this.connecting?.socket) this.connecting.socket.terminate()
    if (this.bodyReader) {
      this.abandoned = true
      void this.bodyReader.cancel().catch(() => {})
    }
    if (conn) {
      const clean = failure === null && this.sent && !this.abandoned && this.answerHead!.keepAlive && !this.reader.extra && !conn.pending
      if (clean && conn.open) {
        if (this.paused) conn.socket.resume()
        release(conn)
      } else {
        conn.ex = null
        forget(conn)
        conn.socket.terminate()
      }
    }
    if (this.responded) this.o.onBodyEnd?.(this.bytesOut, failure, this.inBytes)
  }
}

export function exchange(o: ExchangeOptions): Promise<ExchangeResult> {
  const conn = take(o.origin)
  const answer = new Exchange(o).run(conn)
  if (!conn || !o.replayable || o.body instanceof ReadableStream) return answer
  // A pooled connection the upstream had closed: nothing was answered, so send again on a
  // new one.
  return answer.catch((err: unknown) => {
    if (err instanceof UpstreamFailure && err.kind === 'reset' && err.beforeAnswer) return new Exchange(o).run(null)
    throw err
  })
}
