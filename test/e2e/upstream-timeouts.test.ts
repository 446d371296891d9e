// The upstream client's deadlines, TLS, pooled connections and the framing it accepts from
// upstreams, against raw TCP upstreams that write exact bytes (and stall on purpose).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Socket } from 'bun'
import { policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem, raw } from '../helpers/http.ts'

// ---- raw upstreams --------------------------------------------------------------------------

interface RawReq {
  conn: number // connection number on this server, from 1
  nth: number // request number on that connection, from 1
  method: string
  path: string
  headers: Record<string, string> // lower-case names
  body: string
}

interface ConnState {
  id: number
  n: number
  buf: Buffer
  closed: boolean
}

type RawHandler = (req: RawReq, s: Socket<ConnState>) => void | Promise<void>

// A raw HTTP/1.1 upstream: parses requests (Content-Length bodies only) and lets `handler`
// write whatever bytes it likes; it records every request and every connection.
class RawServer {
  readonly requests: RawReq[] = []
  readonly conns: ConnState[] = []
  readonly listener: Bun.TCPSocketListener<ConnState>

  constructor(handler: RawHandler) {
    this.listener = Bun.listen<ConnState>({
      hostname: '127.0.0.1',
      port: 0,
      socket: {
        open: (s) => {
          s.data = { id: this.conns.length + 1, n: 0, buf: Buffer.alloc(0), closed: false }
          this.conns.push(s.data)
        },
        data: (s, d) => {
          const c = s.data
          c.buf = Buffer.concat([c.buf, d])
          for (let guard = 0; guard < 100; guard++) {
            const end = c.buf.indexOf('\r\n\r\n')
            if (end === -1) return
            const [line, ...fields] = c.buf.toString('latin1', 0, end).split('\r\n')
            const headers: Record<string, string> = {}
            for (const f of fields) {
              const colon = f.indexOf(':')
              headers[f.slice(0, colon).trim().toLowerCase()] = f.slice(colon + 1).trim()
            }
            const length = Number(headers['content-length'] ?? 0)
            if (c.buf.length < end + 4 + length) return
            const body = c.buf.toString('latin1', end + 4, end + 4 + length)
            c.buf = c.buf.subarray(end + 4 + length)
            const [method, path] = line!.split(' ')
            const req = { conn: c.id, nth: ++c.n, method: method!, path: path!, headers, body }
            this.requests.push(req)
            void handler(req, s)
          }
        },
        close: (s) => void (s.data.closed = true),
        error: (s) => void (s.data.closed = true),
      },
    })
  }

  get url(): string {
    return `http://127.0.0.1:${this.listener.port}`
  }
  get port(): number {
    return this.listener.port
  }
  stop(): void {
    this.listener.stop(true)
  }
}

// ---- raw client -----------------------------------------------------------------------------

interface Talk {
  text: string
  closed: boolean // the gateway closed the connection (rather than our own timer)
  ms: number
}

// Writes `text` to the gateway and reads until the gateway closes, or `waitMs` passes.
async function talk(url: string, text: string, waitMs = 4_000): Promise<Talk> {
  const { hostname, port } = new URL(url)
  const chunks: Buffer[] = []
  const { promise, resolve } = Promise.withResolvers<boolean>()
  const started = performance.now()
  const socket = await Bun.connect({
    hostname,
    port: Number(port),
    socket: {
      data: (_s, d) => void chunks.push(Buffer.from(d)),
      close: () => resolve(true),
      end: () => resolve(true),
      error: () => resolve(true),
    },
  })
  socket.write(text)
  const timer = setTimeout(() => resolve(false), waitMs)
  const closed = await promise
  const ms = performance.now() - started
  clearTimeout(timer)
  socket.end()
  return { text: Buffer.concat(chunks).toString('latin1'), closed, ms }
}

// Head and body of an answer as it came on the wire; `complete` says whether its framing ended.
function framed(text: string): { status: number; head: string; body: string; complete: boolean } {
  const at = text.indexOf('\r\n\r\n')
  if (at === -1) return { status: 0, head: text, body: '', complete: false }
  const head = text.slice(0, at).toLowerCase()
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)
  const rest = text.slice(at + 4)
  const length = /\r\ncontent-length: *(\d+)/.exec(head)?.[1]
  if (/\r\ntransfer-encoding: *chunked/.test(head)) {
    let body = ''
    let buf = rest
    for (let guard = 0; guard < 10_000; guard++) {
      const nl = buf.indexOf('\r\n')
      if (nl === -1) return { status, head, body, complete: false }
      const size = parseInt(buf.slice(0, nl), 16)
      if (size === 0) return { status, head, body, complete: buf.slice(nl + 2).startsWith('\r\n') }
      body += buf.slice(nl + 2, nl + 2 + size)
      if (buf.length < nl + 2 + size + 2) return { status, head, body, complete: false }
      buf = buf.slice(nl + 2 + size + 2)
    }
    return { status, head, body, complete: false }
  }
  if (length !== undefined) return { status, head, body: rest.slice(0, Number(length)), complete: rest.length >= Number(length) }
  return { status, head, body: rest, complete: false }
}

async function until(what: string, ok: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await Bun.sleep(10)
  }
}

async function logLine(gw: RunningGateway, path: string): Promise<Record<string, unknown>> {
  await until(`an access log line for ${path}`, () => gw.accessLog().some((e) => e.path === path))
  return gw.accessLog().find((e) => e.path === path)!
}

// ---- certificates ---------------------------------------------------------------------------

interface Cert {
  cert: string
  key: string
  certFile: string
  keyFile: string
}

function openssl(args: string[]): void {
  const made = Bun.spawnSync(['openssl', ...args])
  if (made.exitCode !== 0) throw new Error(made.stderr.toString())
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']

function files(dir: string, name: string): Omit<Cert, 'cert' | 'key'> {
  return { certFile: join(dir, `${name}.pem`), keyFile: join(dir, `${name}.key`) }
}
function read(f: Omit<Cert, 'cert' | 'key'>): Cert {
  return { ...f, cert: readFileSync(f.certFile, 'utf8'), key: readFileSync(f.keyFile, 'utf8') }
}

// A self-signed certificate (its own trust anchor) with `extensions` (`-addext` values).
function selfSigned(dir: string, name: string, extensions: string[]): Cert {
  const f = files(dir, name)
  openssl([
    'req',
    '-x509',
    ...EC,
    '-days',
    '1',
    '-subj',
    `/CN=${name}`,
    ...extensions.flatMap((e) => ['-addext', e]),
    '-keyout',
    f.keyFile,
    '-out',
    f.certFile,
  ])
  return read(f)
}

// A leaf certificate for `san`, signed by `ca`.
function signedBy(ca: Cert, dir: string, name: string, san: string): Cert {
  const f = files(dir, name)
  const csr = join(dir, `${name}.csr`)
  const ext = join(dir, `${name}.ext`)
  writeFileSync(ext, `subjectAltName=${san}\nbasicConstraints=CA:FALSE\n`)
  openssl(['req', '-new', ...EC, '-subj', `/CN=${name}`, '-keyout', f.keyFile, '-out', csr])
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    ext,
    '-out',
    f.certFile,
  ])
  return read(f)
}

// ---- set-up ---------------------------------------------------------------------------------

let gw: RunningGateway
let dir: string
let certDir: string
const raws: RawServer[] = []
const ups: Upstream[] = []
const tlsServers: Bun.Server<undefined>[] = []

function rawServer(handler: RawHandler): RawServer {
  const s = new RawServer(handler)
  raws.push(s)
  return s
}

// Accepts and never says a word (not even a TLS ServerHello).
const silentTls = rawServer(() => {})
const silent = rawServer(() => {})

// Scripted answers: stalls, slow streams.
const script = rawServer(async (req, s) => {
  if (req.path.endsWith('/cl')) {
    s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n0123456789')
  } else if (req.path.endsWith('/chunked')) {
    s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n')
  } else if (req.path.endsWith('/flow')) {
    s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n')
    for (let i = 0; i < 8; i++) {
      await Bun.sleep(100)
      s.write(`8\r\nchunk-${i};\r\n`)
    }
    s.write('0\r\n\r\n')
  }
})

// Answers the first request on each connection and keeps it open; a second request on the
// same connection makes it close without a word (a keep-alive timeout racing a reuse).
const stale = rawServer((req, s) => {
  if (req.nth > 1) return void s.terminate()
  const body = `${req.method} ${req.path} ${req.body}`
  s.write(`HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
})

const late: { path: string; sent: boolean } = { path: '', sent: false }

// Framing from the upstream, good and bad.
const framing = rawServer(async (req, s) => {
  const p = req.path.slice('/framing'.length)
  const ok = (body: string) => s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
  switch (p) {
    case '/plain':
      return void ok(`plain on ${req.conn}`)
    case '/both':
      return void s.write('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n')
    case '/smuggle':
      return void s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirstHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled')
    case '/smuggle-late':
      ok('first')
      await Bun.sleep(20)
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled')
      late.sent = true
      return
    case '/bad-chunk':
      return void s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n')
    case '/bad-chunk-late':
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n')
      await Bun.sleep(50)
      return void s.write('5x\r\nworld\r\n0\r\n\r\n')
    case '/fold':
      return void s.write('HTTP/1.1 200 OK\r\nX-Folded: one\r\n  two\r\nContent-Length: 2\r\n\r\nok')
    case '/fold-colon':
      return void s.write('HTTP/1.1 200 OK\r\nX-Folded: one\r\n Content-Length: 2\r\nContent-Length: 2\r\n\r\nok')
    case '/bad-status':
      return void s.write('HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok')
    case '/bad-version':
      return void s.write('HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok')
    case '/continue':
      return void s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal')
    case '/continue-late':
      s.write('HTTP/1.1 100 Continue\r\n\r\n')
      await Bun.sleep(30)
      return void s.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\nreal')
    default:
      return void ok(`${p} on ${req.conn}`)
  }
})

beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'portcullis-upstream-tls-'))
  const trusted = selfSigned(certDir, 'trusted', ['subjectAltName=IP:127.0.0.1,DNS:localhost'])
  const untrusted = selfSigned(certDir, 'untrusted', ['subjectAltName=IP:127.0.0.1,DNS:localhost'])
  const ca = selfSigned(certDir, 'test-ca', ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'])
  const rightName = signedBy(ca, certDir, 'right-name', 'IP:127.0.0.1')
  const wrongName = signedBy(ca, certDir, 'wrong-name', 'DNS:other.example')
  // The gateway trusts `trusted` and the test CA (so both its leaves), never `untrusted`.
  const bundle = join(certDir, 'ca-bundle.pem')
  writeFileSync(bundle, trusted.cert + ca.cert)
  const serveTls = (c: Cert, text: string) => {
    const s = Bun.serve({ hostname: '127.0.0.1', port: 0, tls: { cert: c.cert, key: c.key }, fetch: () => new Response(text) })
    tlsServers.push(s)
    return s.port!
  }
  const okPort = serveTls(trusted, 'hello over tls')
  const untrustedPort = serveTls(untrusted, 'should not be read')
  const rightNamePort = serveTls(rightName, 'signed by the test CA')
  const wrongNamePort = serveTls(wrongName, 'should not be read either')

  dir = policyDir({
    'main.policy': `
upstream tls-silent { target https://127.0.0.1:${silentTls.port}; connect-timeout 200ms; timeout 3s }
upstream silent { target ${silent.url}; timeout 300ms }
upstream stall { target ${script.url}; timeout 5s; idle-timeout 300ms }
upstream flow { target ${script.url}; timeout 300ms }
upstream tls-ok { target https://127.0.0.1:${okPort}; connect-timeout 2s; timeout 2s }
upstream tls-untrusted { target https://127.0.0.1:${untrustedPort}; connect-timeout 2s; timeout 2s }
upstream tls-right-name { target https://127.0.0.1:${rightNamePort}; connect-timeout 2s; timeout 2s }
upstream tls-wrong-name { target https://127.0.0.1:${wrongNamePort}; connect-timeout 2s; timeout 2s }
upstream stale { target ${stale.url}; timeout 2s }
upstream stale-unsafe { target ${stale.url}; timeout 2s; retry 1 on 503 retry-unsafe }
upstream framing { target ${framing.url}; timeout 2s }
match * /tls-silent/{p} { proxy tls-silent }
match * /silent/{p} { proxy silent }
match * /stall/{p} { proxy stall }
match * /flow/{p} { proxy flow }
match * /tls-ok/{p} { rewrite path /{p}; proxy tls-ok }
match * /tls-untrusted/{p} { rewrite path /{p}; proxy tls-untrusted }
match * /tls-right-name/{p} { rewrite path /{p}; proxy tls-right-name }
match * /tls-wrong-name/{p} { rewrite path /{p}; proxy tls-wrong-name }
match * /stale/{p} { proxy stale }
match * /stale-unsafe/{p} { proxy stale-unsafe }
match * /framing/{p} { proxy framing }
`,
  })
  gw = await startGateway(dir, [], { NODE_EXTRA_CA_CERTS: bundle })
})

afterAll(async () => {
  await gw?.stop()
  for (const r of raws) r.stop()
  for (const u of ups) u.stop()
  for (const s of tlsServers) s.stop(true)
  removeDir(dir)
  removeDir(certDir)
})

// ---- deadlines ------------------------------------------------------------------------------

// The access log line of an answer the idle timeout cut after 10 body bytes.
async function expectCutLogged(path: string): Promise<void> {
  const { status, upstream_status, gateway_error, bytes_out } = await logLine(gw, path)
  expect({ status, upstream_status, gateway_error, bytes_out }).toEqual({
    status: 200,
    upstream_status: 200,
    gateway_error: 'upstream_timeout',
    bytes_out: 10,
  })
}

describe('deadlines', () => {
  test('connect-timeout: a TLS handshake that never completes is a 504 upstream_timeout well before the timeout', async () => {
    const started = performance.now()
    const res = await gw.fetch('/tls-silent/x')
    const ms = performance.now() - started
    const problem = await expectProblem(res, 504, 'upstream_timeout')
    expect(problem.detail).toContain('connection')
    expect(ms).toBeGreaterThanOrEqual(180)
    expect(ms).toBeLessThan(1_500) // the answer's `timeout` is 3 s
    expect(silentTls.conns.length).toBeGreaterThanOrEqual(1) // the TCP part was accepted
  })

  // The silent server never closes a connection: only the gateway can.
  test('connect-timeout: the half-made connection is closed, not left open', async () => {
    const before = silentTls.conns.length
    await expectProblem(await gw.fetch('/tls-silent/y'), 504, 'upstream_timeout')
    expect(silentTls.conns.length).toBe(before + 1)
    const conn = silentTls.conns[before]!
    await until('the gateway closed the stalled TLS connection', () => conn.closed, 2_000)
  })

  test('response-head timeout: an upstream that never answers is a 504 after about the timeout', async () => {
    const started = performance.now()
    const res = await gw.fetch('/silent/x')
    const ms = performance.now() - started
    const problem = await expectProblem(res, 504, 'upstream_timeout')
    expect(problem.detail).toContain('300 ms')
    expect(ms).toBeGreaterThanOrEqual(280)
    expect(ms).toBeLessThan(2_000)
    expect(silent.requests.some((r) => r.path === '/silent/x')).toBe(true)
    // The exchange is over: its connection is closed, not pooled for the next request.
    await until('the gateway closed the silent connection', () => silent.conns.every((c) => c.closed), 2_000)
  })

  test('idle timeout: a Content-Length body that stalls is cut, never completed; the log says upstream_timeout', async () => {
    const got = await talk(gw.url, 'GET /stall/cl HTTP/1.1\r\nHost: gw\r\n\r\n')
    expect(got.closed).toBe(true) // a keep-alive request: only a cut closes it
    expect(got.ms).toBeGreaterThanOrEqual(250)
    expect(got.ms).toBeLessThan(3_000) // the head timeout is 5 s: the idle timeout cut it
    const answer = framed(got.text)
    expect(answer.status).toBe(200)
    expect(answer.complete).toBe(false)
    expect(answer.body).toBe('0123456789')
    await expectCutLogged('/stall/cl')
    // The upstream's connection is dropped too.
    const conn = script.requests.find((r) => r.path === '/stall/cl')!.conn
    await until('the stalled upstream connection is closed', () => script.conns[conn - 1]!.closed, 2_000)
  })

  test('idle timeout: a chunked body that stalls never gets its last chunk', async () => {
    const got = await talk(gw.url, 'GET /stall/chunked HTTP/1.1\r\nHost: gw\r\n\r\n')
    expect(got.closed).toBe(true)
    expect(got.ms).toBeLessThan(3_000)
    expect(got.text).toStartWith('HTTP/1.1 200')
    expect(got.text).not.toEndWith('0\r\n\r\n')
    const answer = framed(got.text)
    expect(answer.complete).toBe(false)
    expect(answer.body).toBe('0123456789')
    await expectCutLogged('/stall/chunked')
  })

  test('a stream that keeps flowing is delivered whole, though it lasts longer than the timeout', async () => {
    const started = performance.now()
    const res = await gw.fetch('/flow/flow')
    expect(res.status).toBe(200)
    const text = await res.text()
    const ms = performance.now() - started
    expect(text).toBe(Array.from({ length: 8 }, (_, i) => `chunk-${i};`).join(''))
    expect(ms).toBeGreaterThanOrEqual(700) // over twice the 300 ms timeout
    const entry = await logLine(gw, '/flow/flow')
    expect(entry.gateway_error).toBeNull()
    expect(entry.bytes_out).toBe(64)
  })

  test('a route timeout longer than the listener idle timeout (--idle-timeout 1) still gets its answer', async () => {
    const slow = startUpstream(async () => {
      await Bun.sleep(1_500)
      return new Response('late but fine')
    })
    ups.push(slow)
    const dir2 = policyDir({ 'main.policy': `upstream late { target ${slow.url}; timeout 500ms }\nmatch GET /late { proxy late timeout 3s }\n` })
    const gw2 = await startGateway(dir2, ['--idle-timeout', '1'])
    try {
      const started = performance.now()
      const res = await gw2.fetch('/late')
      expect(res.status).toBe(200)
      expect(await res.text()).toBe('late but fine')
      expect(performance.now() - started).toBeGreaterThanOrEqual(1_400)
    } finally {
      await gw2.stop()
      removeDir(dir2)
    }
  })
})

// ---- TLS ------------------------------------------------------------------------------------

describe('TLS upstreams', () => {
  test('an https target whose CA is in NODE_EXTRA_CA_CERTS answers 200 with its body', async () => {
    const res = await gw.fetch('/tls-ok/hi')
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('hello over tls')
  })

  test('an https target with a certificate nobody vouches for is a 502 bad_gateway', async () => {
    await expectProblem(await gw.fetch('/tls-untrusted/hi'), 502, 'bad_gateway')
  })

  test('a certificate from a trusted CA is checked against the host: 200 for 127.0.0.1, 502 bad_gateway for another name', async () => {
    const right = await gw.fetch('/tls-right-name/hi')
    expect(right.status).toBe(200)
    expect(await right.text()).toBe('signed by the test CA')
    await expectProblem(await gw.fetch('/tls-wrong-name/hi'), 502, 'bad_gateway')
  })
})

// ---- pooled connections ---------------------------------------------------------------------

describe('a pooled connection the upstream closed', () => {
  // After a GET, the pool holds one connection that has answered once: the next request on it is
  // met with a close (see `stale`).
  const prime = async (prefix: string) => {
    const res = await gw.fetch(`${prefix}/prime`)
    expect(res.status).toBe(200)
    await res.text()
  }
  const tries = (path: string) => stale.requests.filter((r) => r.path === path)

  test('a GET is sent again on a fresh connection: 200', async () => {
    await prime('/stale')
    const res = await gw.fetch('/stale/get')
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('GET /stale/get ')
    // Once on the pooled connection (closed unanswered), once on a new one.
    expect(tries('/stale/get').map((r) => r.nth)).toEqual([2, 1])
  })

  test('a POST with a body is not sent again: 502 bad_gateway', async () => {
    await prime('/stale')
    const res = await gw.fetch('/stale/post', { method: 'POST', body: 'pay once' })
    await expectProblem(res, 502, 'bad_gateway')
    expect(tries('/stale/post').map((r) => r.nth)).toEqual([2])
  })

  test('a POST with Idempotency-Key (no body) is sent again: 200', async () => {
    await prime('/stale')
    const res = await raw(gw.url, 'POST', '/stale/keyed', ['Idempotency-Key: k-1'])
    expect(res.status).toBe(200)
    expect(res.body).toBe('POST /stale/keyed ')
    expect(tries('/stale/keyed').map((r) => r.nth)).toEqual([2, 1])
  })

  test('a POST with Idempotency-Key whose body is a stream (no retry policy) is not sent again: 502 bad_gateway', async () => {
    await prime('/stale')
    const res = await gw.fetch('/stale/keyed-stream', { method: 'POST', body: 'streamed once', headers: { 'idempotency-key': 'k-3' } })
    await expectProblem(res, 502, 'bad_gateway')
    expect(tries('/stale/keyed-stream').map((r) => r.nth)).toEqual([2])
  })

  test('with a buffered body (retry-unsafe): a POST with Idempotency-Key is sent again whole, one without is not', async () => {
    await prime('/stale-unsafe')
    const keyed = await gw.fetch('/stale-unsafe/keyed', { method: 'POST', body: 'charge 10', headers: { 'idempotency-key': 'k-2' } })
    expect(keyed.status).toBe(200)
    expect(await keyed.text()).toBe('POST /stale-unsafe/keyed charge 10')
    expect(tries('/stale-unsafe/keyed').map((r) => [r.nth, r.body])).toEqual([
      [2, 'charge 10'],
      [1, 'charge 10'],
    ])
    await prime('/stale-unsafe')
    const plain = await gw.fetch('/stale-unsafe/plain', { method: 'POST', body: 'charge 20' })
    await expectProblem(plain, 502, 'bad_gateway')
    expect(tries('/stale-unsafe/plain').map((r) => r.nth)).toEqual([2])
  })
})

// ---- framing from the upstream --------------------------------------------------------------

describe('framing from the upstream', () => {
  const connOf = (path: string) => framing.requests.find((r) => r.path === path)!.conn
  const get = async (path: string) => {
    const res = await gw.fetch(`/framing${path}`)
    return { status: res.status, text: await res.text() }
  }

  test('a well-framed keep-alive answer leaves its connection in the pool (the control)', async () => {
    const a = await get('/ka-1')
    const b = await get('/ka-2')
    expect(a.status).toBe(200)
    expect(b.text).toBe(`/ka-2 on ${connOf('/framing/ka-1')}`)
  })

  test('Content-Length with Transfer-Encoding: chunked is read as chunked and the connection is not reused', async () => {
    const res = await get('/both')
    expect(res).toEqual({ status: 200, text: 'hello world' })
    const conn = connOf('/framing/both')
    await until('the gateway closed the connection that sent both framings', () => framing.conns[conn - 1]!.closed, 2_000)
    const next = await get('/after-both')
    expect(next.status).toBe(200)
    expect(connOf('/framing/after-both')).not.toBe(conn)
    // The connection may have served earlier requests; after the doubly framed answer, none.
    const at = framing.requests.findIndex((r) => r.path === '/framing/both')
    expect(framing.requests.slice(at + 1).filter((r) => r.conn === conn)).toEqual([])
  })

  test('bytes after a Content-Length body never become an answer; the next request gets its own', async () => {
    const res = await get('/smuggle')
    expect(res).toEqual({ status: 200, text: 'first' })
    const conn = connOf('/framing/smuggle')
    const next = await get('/after-smuggle')
    expect(next.status).toBe(200)
    expect(next.text).toStartWith('/after-smuggle on ')
    expect(next.text).not.toContain('smuggled')
    expect(connOf('/framing/after-smuggle')).not.toBe(conn)
    await until('the gateway closed the connection with extra bytes', () => framing.conns[conn - 1]!.closed, 2_000)
  })

  test('bytes that arrive on an idle pooled connection never become an answer', async () => {
    const res = await get('/smuggle-late')
    expect(res).toEqual({ status: 200, text: 'first' })
    await until('the upstream sent its extra answer', () => late.sent, 2_000)
    await Bun.sleep(50) // let the extra bytes reach the gateway while the connection is idle
    const next = await get('/after-late')
    expect(next.status).toBe(200)
    expect(next.text).toStartWith('/after-late on ')
  })

  test('a malformed chunk size before the head is passed on is a 502 bad_gateway', async () => {
    await expectProblem(await gw.fetch('/framing/bad-chunk'), 502, 'bad_gateway')
  })

  test('a malformed chunk size later in the body cuts the answer: never complete', async () => {
    const got = await talk(gw.url, 'GET /framing/bad-chunk-late HTTP/1.1\r\nHost: gw\r\n\r\n')
    expect(got.closed).toBe(true)
    const answer = framed(got.text)
    expect(answer.status).toBe(200)
    expect(answer.complete).toBe(false)
    expect(answer.body).toBe('hello')
    expect(got.text).not.toContain('world')
    const entry = await logLine(gw, '/framing/bad-chunk-late')
    const { status, upstream_status, gateway_error, bytes_out } = entry
    expect({ status, upstream_status, gateway_error, bytes_out }).toEqual({
      status: 200,
      upstream_status: 200,
      gateway_error: 'bad_gateway',
      bytes_out: 5,
    })
  })

  test.each(['/fold', '/fold-colon', '/bad-status', '/bad-version'])('%s is a 502 bad_gateway', async (path) => {
    await expectProblem(await gw.fetch(`/framing${path}`), 502, 'bad_gateway')
  })

  test('a 100 Continue followed by the real answer gives the real answer', async () => {
    expect(await get('/continue')).toEqual({ status: 200, text: 'real' })
  })

  test('interim answers in separate packets (100, then 103 with a field) are skipped too', async () => {
    expect(await get('/continue-late')).toEqual({ status: 201, text: 'real' })
  })
})
