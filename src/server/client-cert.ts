// The TLS listener when --client-ca is given: it asks each client for a certificate (never
// demands one) and hands the gateway what it presented (Peer.clientCert).
//
// Bun.serve cannot say which certificate a client presented (oven-sh/bun#14097), and node:https
// request sockets have no getPeerCertificate (oven-sh/bun#16834). Bun.listen's TLS sockets do.
// So TLS ends in Bun.listen, where the certificate is read once per connection, and the plain
// bytes go, each connection on its own loopback connection, to an HTTP server on 127.0.0.1 (an
// ordinary Bun.serve: the same handler, streaming bodies, WebSocket upgrades). That server knows
// a connection by the loopback port it comes from; one it does not know (anyone else on this
// host) is refused. Bytes are relayed with backpressure both ways: a side that cannot take more
// pauses the other.
import { createHash } from 'node:crypto'
import type { Server, Socket, TCPSocketListener, TLSOptions } from 'bun'
import type { ClientCert } from '../runtime/request.ts'

// What a client presented, from a TLS server socket after its handshake; null when nothing.
export function clientCertOf(socket: Socket<unknown>, error: Error | null = socket.getAuthorizationError()): ClientCert | null {
  const x509 = socket.getPeerX509Certificate()
  if (!x509) return null
  const authorized = socket.authorized
  const code = (error as (Error & { code?: string }) | null)?.code
  return {
    sha256: createHash('sha256').update(x509.raw).digest('hex'),
    authorized,
    reason: authorized ? null : (code ?? error?.message ?? 'not verified'),
    subject: x509.subject ? x509.subject.split('\n').join(', ') : null,
  }
}

// What the HTTP server learns of a bridged connection.
export interface BridgedConnection {
  ip: string // the client's address, as the TLS listener saw it
  port: number // the TLS listener's port
  clientCert: ClientCert | null
}

export interface ClientCertListenerOptions<S extends Server<any>> {
  hostname: string
  port: number
  reusePort: boolean
  tls: TLSOptions // with ca, requestCert: true, rejectUnauthorized: false
  handshakeTimeout: number // seconds from accept until the bridge is up
  // Starts the HTTP server on 127.0.0.1, on a port of the system's choosing. `connection`
  // tells a request's connection, undefined for one that did not come through the bridge.
  serve(hostname: string, connection: (req: Request, server: S) => BridgedConnection | undefined): S
}

// The listener as the gateway stops and names it (the shape of a Bun.serve Server).
export interface ClientCertListener<S> {
  readonly url: URL
  readonly inner: S
  stop(closeActiveConnections?: boolean): Promise<void>
}

// One client connection: its TLS socket, its loopback socket, and the bytes either did not take yet.
class Pipe {
  inner: Socket<Pipe> | null = null
  toInner: Uint8Array | null = null
  toOuter: Uint8Array | null = null
  facts: BridgedConnection | null = null
  innerPort = 0
  outerClosed = false
  innerClosed = false
  constructor(readonly outer: Socket<Pipe>) {}
}

function join(a: Uint8Array | null, b: Uint8Array): Uint8Array {
  if (!a) return b
  const all = new Uint8Array(a.length + b.length)
  all.set(a)
  all.set(b, a.length)
  return all
}

// Writes what `to` takes now; returns the rest, or null when all went (or `to` is gone).
function send(to: Socket<Pipe>, bytes: Uint8Array): Uint8Array | null {
  const n = to.write(bytes)
  return n >= 0 && n < bytes.length ? bytes.subarray(n) : null
}

export function listenWithClientCerts<S extends Server<any>>(opts: ClientCertListenerOptions<S>): ClientCertListener<S> {
  const byPort = new Map<number, Pipe>() // loopback source port → connection
  const inner = opts.serve('127.0.0.1', (req, server) => {
    const port = server.requestIP(req)?.port
    return port === undefined ? undefined : (byPort.get(port)?.facts ?? undefined)
  })
  const innerPort = inner.port!

  const innerHandlers = {
    binaryType: 'uint8array' as const,
    open(s: Socket<Pipe>) {
      const p = s.data
      if (p.outerClosed) return void s.end()
      p.inner = s
      p.innerPort = s.localPort
      byPort.set(p.innerPort, p)
      p.outer.timeout(0)
      if (p.toInner) {
        p.toInner = send(s, p.toInner)
        if (!p.toInner) p.outer.resume()
      } else p.outer.resume()
    },
    data(s: Socket<Pipe>, bytes: Uint8Array) {
      const p = s.data
      if (p.outerClosed) return
      if (p.toOuter) p.toOuter = join(p.toOuter, bytes)
      else p.toOuter = send(p.outer, bytes)
      if (p.toOuter) s.pause()
    },
    drain(s: Socket<Pipe>) {
      const p = s.data
      if (p.toInner) p.toInner = send(s, p.toInner)
      if (!p.toInner && !p.outerClosed) p.outer.resume()
    },
    close(s: Socket<Pipe>) {
      const p = s.data
      p.innerClosed = true
      if (byPort.get(p.innerPort) === p) byPort.delete(p.innerPort)
      if (!p.toOuter) p.outer.end() // else once the client took the rest (outer drain)
    },
    connectError(s: Socket<Pipe>) {
      s.data.innerClosed = true
      s.data.outer.end()
    },
    error() {}, // close follows
  }

  // `reusePort` (for --workers) is honoured by Bun.listen as by Bun.serve, though bun-types omits it.
  const listenOptions: Bun.TCPSocketListenOptions<Pipe> & { reusePort: boolean } = {
    hostname: opts.hostname,
    port: opts.port,
    reusePort: opts.reusePort,
    tls: opts.tls,
    socket: {
      binaryType: 'uint8array',
      open(s) {
        s.data = new Pipe(s)
        s.timeout(opts.handshakeTimeout)
      },
      handshake(s, _success, error) {
        const p = s.data
        p.facts = { ip: s.remoteAddress, port: s.localPort, clientCert: clientCertOf(s, error) }
        s.pause() // until the loopback connection is up
        Bun.connect<Pipe>({ hostname: '127.0.0.1', port: innerPort, data: p, socket: innerHandlers }).catch(() => {})
      },
      data(s, bytes) {
        const p = s.data
        if (p.innerClosed) return
        if (!p.inner || p.toInner) p.toInner = join(p.toInner, bytes)
        else p.toInner = send(p.inner, bytes)
        if (p.toInner) s.pause()
      },
      drain(s) {
        const p = s.data
        if (p.toOuter) p.toOuter = send(s, p.toOuter)
        if (p.toOuter) return
        if (p.innerClosed) s.end()
        else p.inner?.resume()
      },
      close(s) {
        const p = s.data
        if (!p) return
        p.outerClosed = true
        p.inner?.end()
      },
      timeout(s) {
        s.end()
      },
      error() {}, // close follows
    },
  }
  let outer: TCPSocketListener<Pipe>
  try {
    outer = Bun.listen<Pipe>(listenOptions)
  } catch (err) {
    void inner.stop(true)
    throw err
  }

  return {
    url: new URL(`https://${opts.hostname.includes(':') ? `[${opts.hostname}]` : opts.hostname}:${outer.port}/`),
    inner,
    async stop(closeActiveConnections = false) {
      outer.stop(closeActiveConnections)
      await inner.stop(closeActiveConnections)
    },
  }
}
