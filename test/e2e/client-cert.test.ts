// Client certificates on the TLS listener (--client-ca): the listener asks for one, never
// demands one, and the gateway learns what was presented (Peer.clientCert) from
// src/server/client-cert.ts. Certificates are made with openssl at test time: a CA, a client
// it signed, a client another CA signed, and an expired client the CA signed.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import tls from 'node:tls'
import type { Server } from 'bun'
import { clientCertOf, listenWithClientCerts, type BridgedConnection, type ClientCertListener } from '../../src/server/client-cert.ts'
import { policyDir, rawRequest, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { parseRaw, type Echo } from '../helpers/http.ts'
import { Certs } from '../helpers/certs.ts'

const certs = new Certs()
const certDir = certs.dir
const pem = (name: string) => certs.pem(name)
const makeCert = (name: string, subject: string, ca: string | null, days: number, serial: number, extra: string[] = []) =>
  certs.make(name, subject, ca, days, serial, extra)
const opensslSha256 = (name: string) => certs.sha256(name)

type Who = 'alice' | 'mallory' | 'expired' | null
const clientTls = (who: Who) => ({ ca: pem('server.pem'), ...(who ? { cert: pem(`${who}.pem`), key: pem(`${who}.key`) } : {}) })

beforeAll(() => {
  makeCert('server', '/CN=localhost', null, 1, 0, ['-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'])
  makeCert('ca', '/CN=Portcullis Test Client CA', null, 10, 0)
  makeCert('other-ca', '/CN=Some Other CA', null, 10, 0)
  makeCert('alice', '/CN=alice/O=Acme', 'ca', 5, 1)
  makeCert('mallory', '/CN=mallory', 'other-ca', 5, 2)
  makeCert('expired', '/CN=expired', 'ca', -1, 3)
})
afterAll(() => removeDir(certDir))

describe('listenWithClientCerts (the TLS listener with --client-ca)', () => {
  let listener: ClientCertListener<Server<undefined>>
  const seen: (BridgedConnection | undefined)[] = []
  const url = (path = '/') => `${listener.url.origin}${path}`

  beforeAll(() => {
    listener = listenWithClientCerts({
      hostname: '127.0.0.1',
      port: 0,
      reusePort: false,
      tls: { cert: pem('server.pem'), key: pem('server.key'), ca: pem('ca.pem'), requestCert: true, rejectUnauthorized: false },
      handshakeTimeout: 10,
      serve: (hostname, connection) =>
        Bun.serve<undefined>({
          hostname,
          port: 0,
          async fetch(req, server) {
            const c = connection(req, server)
            seen.push(c)
            const path = new URL(req.url).pathname
            if (path === '/ws' && server.upgrade(req, { data: undefined })) return undefined
            if (path === '/upload') {
              const hash = new Bun.CryptoHasher('sha256')
              let bytes = 0
              for await (const chunk of req.body!) {
                hash.update(chunk)
                bytes += chunk.byteLength
              }
              return Response.json({ bytes, sha256: hash.digest('hex') })
            }
            if (path === '/download') return new Response(new Uint8Array(16 * 1024 * 1024).fill(7))
            return Response.json(c ?? 'unknown')
          },
          websocket: {
            message: (ws, m) => void ws.send(m),
          },
        }),
    })
  })
  afterAll(() => listener?.stop(true))

  const facts = async (who: Who) => (await (await fetch(url(), { tls: clientTls(who) })).json()) as BridgedConnection

  test('a certificate the CA signed: authorized, with its subject and the SHA-256 of its DER', async () => {
    const c = await facts('alice')
    expect(c.ip).toBe('127.0.0.1')
    expect(c.port).toBe(Number(listener.url.port))
    expect(c.clientCert).toEqual({ sha256: opensslSha256('alice'), authorized: true, reason: null, subject: 'CN=alice, O=Acme' })
  })

  test('a certificate another CA signed: presented, fingerprinted, not authorized', async () => {
    const c = await facts('mallory')
    expect(c.clientCert).toEqual({ sha256: opensslSha256('mallory'), authorized: false, reason: expect.any(String), subject: 'CN=mallory' })
    expect(c.clientCert!.reason).toMatch(/^UNABLE_TO_(VERIFY_LEAF_SIGNATURE|GET_ISSUER_CERT)/)
  })

  test('an expired certificate the CA signed: not authorized, and why', async () => {
    const c = await facts('expired')
    expect(c.clientCert).toEqual({ sha256: opensslSha256('expired'), authorized: false, reason: 'CERT_HAS_EXPIRED', subject: 'CN=expired' })
  })

  test('no certificate: served, with clientCert null', async () => {
    expect((await facts(null)).clientCert).toBeNull()
  })

  test('a connection is read once: every request on it gets the same facts, another connection its own', async () => {
    const ask = (sock: tls.TLSSocket) => sock.write(`GET / HTTP/1.1\r\nhost: localhost\r\n\r\n`)
    const sock = tls.connect({ host: '127.0.0.1', port: Number(listener.url.port), servername: 'localhost', ...clientTls('alice') })
    let got = ''
    sock.on('data', (d) => (got += d))
    await new Promise((resolve) => sock.once('secureConnect', resolve))
    const from = seen.length
    ask(sock)
    while ((got.match(/HTTP\/1\.1 200/g) ?? []).length < 1) await Bun.sleep(5)
    ask(sock)
    while ((got.match(/HTTP\/1\.1 200/g) ?? []).length < 2) await Bun.sleep(5)
    sock.destroy()
    await facts('alice')
    const [first, second, other] = seen.slice(from)
    expect(first?.clientCert?.subject).toBe('CN=alice, O=Acme')
    expect(second).toBe(first!) // the same object: nothing is recomputed per request
    expect(other).not.toBe(first!)
    expect(other?.clientCert).toEqual(first!.clientCert)
  })

  test('a client that reconnects with its earlier TLS session is still known by its certificate', async () => {
    const get = (session?: Buffer) =>
      new Promise<{ body: BridgedConnection; session: Buffer | undefined }>((resolve, reject) => {
        let last: Buffer | undefined
        const sock = tls.connect(
          { host: '127.0.0.1', port: Number(listener.url.port), servername: 'localhost', session, ...clientTls('alice') },
          () => sock.write('GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n'),
        )
        sock.on('session', (s) => (last = s))
        let got = ''
        sock.on('data', (d) => (got += d))
        sock.on('close', () => resolve({ body: JSON.parse(parseRaw(got).body), session: last ?? sock.getSession() }))
        sock.on('error', reject)
      })
    const first = await get()
    const again = await get(first.session)
    expect(again.body.clientCert).toEqual(first.body.clientCert)
    expect(again.body.clientCert?.authorized).toBe(true)
  })

  test('a connection straight to the loopback HTTP server is not taken for a TLS client', async () => {
    const res = await fetch(`http://127.0.0.1:${listener.inner.port}/`)
    expect(await res.json()).toBe('unknown')
  })

  test('bodies stream both ways through the relay', async () => {
    const noise = crypto.getRandomValues(new Uint8Array(65536))
    const big = new Uint8Array(24 * 1024 * 1024) // 24 MiB: the relay has to wait for drain many times
    for (let i = 0; i < big.length; i += noise.length) big.set(noise, i)
    const up = (await (await fetch(url('/upload'), { method: 'POST', body: big, tls: clientTls('alice') })).json()) as {
      bytes: number
      sha256: string
    }
    expect(up).toEqual({ bytes: big.length, sha256: new Bun.CryptoHasher('sha256').update(big).digest('hex') })
    const down = await fetch(url('/download'), { tls: clientTls(null) })
    const bytes = new Uint8Array(await down.arrayBuffer())
    expect(bytes.length).toBe(16 * 1024 * 1024)
    expect(bytes.every((b) => b === 7)).toBe(true)
  })

  test('a WebSocket upgrade goes through', async () => {
    const ws = new WebSocket(url('/ws').replace('https', 'wss'), { tls: clientTls('alice') })
    const echoed = new Promise<string>((resolve, reject) => {
      ws.onmessage = (e) => resolve(e.data as string)
      ws.onerror = () => reject(new Error('websocket failed'))
    })
    await new Promise((resolve) => (ws.onopen = resolve))
    ws.send('hello over mTLS')
    expect(await echoed).toBe('hello over mTLS')
    ws.close()
    expect(seen.at(-1)?.clientCert?.subject).toBe('CN=alice, O=Acme')
  })

  test('clientCertOf reads a Bun.listen TLS socket the same way', async () => {
    const { promise, resolve } = Promise.withResolvers<ReturnType<typeof clientCertOf>>()
    const server = Bun.listen({
      hostname: '127.0.0.1',
      port: 0,
      tls: { cert: pem('server.pem'), key: pem('server.key'), ca: pem('ca.pem'), requestCert: true, rejectUnauthorized: false },
      socket: {
        handshake: (s) => resolve(clientCertOf(s)),
        data() {},
      },
    })
    const sock = tls.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ...clientTls('expired') })
    sock.on('error', () => {})
    expect(await promise).toEqual({ sha256: opensslSha256('expired'), authorized: false, reason: 'CERT_HAS_EXPIRED', subject: 'CN=expired' })
    sock.destroy()
    server.stop(true)
  })
})

// The TCP ports a process listens on (Linux: /proc), to find the gateway's loopback HTTP server.
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    const link = (() => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`)
      } catch {
        return ''
      }
    })()
    const m = /^socket:\[(\d+)\]$/.exec(link)
    if (m) inodes.add(m[1]!)
  }
  const ports: number[] = []
  for (const file of ['tcp', 'tcp6']) {
    const lines = readFileSync(`/proc/${pid}/net/${file}`, 'utf8').split('\n').slice(1)
    for (const line of lines) {
      const f = line.trim().split(/\s+/)
      if (f[3] === '0A' && inodes.has(f[9]!)) ports.push(parseInt(f[1]!.split(':')[1]!, 16)) // 0A: LISTEN
    }
  }
  return ports
}

describe('the gateway with --tls-cert, --tls-key and --client-ca', () => {
  let gw: RunningGateway
  let up: Upstream
  let dir: string
  let tlsUrl: string
  let wsUp: Server<undefined>

  beforeAll(async () => {
    up = startUpstream()
    wsUp = Bun.serve<undefined>({
      hostname: '127.0.0.1',
      port: 0,
      fetch: (req, server) => (server.upgrade(req, { data: undefined }) ? undefined : new Response('not a websocket', { status: 400 })),
      websocket: { message: (ws, m) => void ws.send(m) },
    })
    dir = policyDir({
      'main.policy': `
upstream ws { target http://127.0.0.1:${wsUp.port} }
match GET /scheme { respond 200 text "{request.scheme}" }
match GET,POST /up { proxy ${up.url} }
match GET /chat { proxy ws websocket }
`,
    })
    const probe = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
    const tlsPort = probe.port!
    probe.stop(true)
    gw = await startGateway(dir, [
      '--tls-cert',
      join(certDir, 'server.pem'),
      '--tls-key',
      join(certDir, 'server.key'),
      '--tls-port',
      String(tlsPort),
      '--client-ca',
      join(certDir, 'ca.pem'),
    ])
    tlsUrl = /listening on (https:\/\/\S+)/.exec(await gw.waitFor('stdout', /listening on https:\/\//))![1]!
  })
  afterAll(async () => {
    await gw?.stop()
    up?.stop()
    wsUp?.stop(true)
    removeDir(dir)
  })

  test('the readiness output names the https listener on the port asked for', () => {
    expect(tlsUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
  })

  test.each([['alice'], ['mallory'], ['expired'], [null]] as [Who][])('plain routes answer over TLS (client certificate: %p)', async (who) => {
    const res = await fetch(`${tlsUrl}/scheme`, { tls: clientTls(who) })
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('https')
  })

  test('the plain listener is unchanged', async () => {
    expect(await (await gw.fetch('/scheme')).text()).toBe('http')
  })

  test('the upstream sees the TLS client: X-Forwarded-For/-Proto/-Port, and a streamed body intact', async () => {
    const body = 'x'.repeat(3 * 1024 * 1024)
    const res = await fetch(`${tlsUrl}/up`, { method: 'POST', body, tls: clientTls('alice') })
    const echo = (await res.json()) as Echo
    expect(echo.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(echo.headers['x-forwarded-proto']).toBe('https')
    expect(echo.headers['x-forwarded-port']).toBe(new URL(tlsUrl).port)
    expect(echo.body.length).toBe(body.length)
  })

  test('WebSocket routes work over TLS with a client certificate', async () => {
    const ws = new WebSocket(`${tlsUrl.replace('https', 'wss')}/chat`, { tls: clientTls('alice') })
    const echoed = new Promise<string>((resolve, reject) => {
      ws.onmessage = (e) => resolve(e.data as string)
      ws.onerror = () => reject(new Error('websocket failed'))
    })
    await new Promise((resolve) => (ws.onopen = resolve))
    ws.send('ping')
    expect(await echoed).toBe('ping')
    ws.close()
  })

  test.skipIf(process.platform !== 'linux')('a request straight to the loopback HTTP server behind the listener is refused (421)', async () => {
    const known = new Set([new URL(gw.url).port, new URL(gw.adminUrl).port, new URL(tlsUrl).port].map(Number))
    const inner = listeningPorts(gw.proc.pid).filter((p) => !known.has(p))
    expect(inner.length).toBe(1)
    const res = parseRaw(await rawRequest(`http://127.0.0.1:${inner[0]}`, 'GET /scheme HTTP/1.1\r\nHost: localhost\r\n\r\n'))
    expect(res.status).toBe(421)
  })

  test('SIGTERM with a kept-alive TLS connection open: the gateway exits promptly and cleanly', async () => {
    const sock = tls.connect({ host: '127.0.0.1', port: Number(new URL(tlsUrl).port), servername: 'localhost', ...clientTls('alice') })
    let got = ''
    sock.on('data', (d) => (got += d))
    sock.on('error', () => {})
    await new Promise((resolve) => sock.once('secureConnect', resolve))
    sock.write('GET /scheme HTTP/1.1\r\nhost: localhost\r\n\r\n')
    while (!got.includes('https')) await Bun.sleep(5)
    const started = performance.now()
    expect(await gw.stop()).toBe(0)
    expect(performance.now() - started).toBeLessThan(3_000)
    sock.destroy()
  })
})
