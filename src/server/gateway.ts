// The serving process: listeners, the current Program, reload (build aside → swap → dispose).
import { watch, type FSWatcher, readFileSync } from 'node:fs'
import { buildProgram, type BuildResult } from '../compile/build-program.ts'
import type { AccessLog } from '../log/access-log.ts'
import { Metrics } from '../metrics/metrics.ts'
import { renderDiagnostics } from '../policy/diagnostics.ts'
import type { RequestObserver } from '../runtime/handle.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import { websocketHandlers, type Upgrade, type WebSocketLink } from '../runtime/websocket.ts'
import type { IpMatcher } from '../runtime/ip.ts'
import type { Program } from '../runtime/program.ts'
import type { Peer } from '../runtime/request.ts'
import { listenWithClientCerts } from './client-cert.ts'
import type { Store } from '../store/store.ts'
import type { Server } from 'bun'

export interface GatewaySettings {
  policies: string
  host: string
  port: number
  tls?: { cert: string; key: string; port: number; clientCa?: string }
  trustProxy: IpMatcher | null
  watch: boolean
  reusePort: boolean
  idleTimeout?: number // seconds a client connection may sit idle between requests
  healthChecks?: boolean // false in the --workers primary, which serves no traffic
  perWorkerStore?: boolean // --workers above 1 without --redis
  observer: RequestObserver
  log: AccessLog
  metrics: Metrics
  store: Store
  // With --workers: tell the serving processes to reload, and add up their metrics.
  afterReload?: () => void
  workerMetrics?: (into: Metrics) => void
}

const DRAIN_MS = 30_000

export class Gateway {
  private current: Program
  private servers: Pick<Server<WebSocketLink>, 'url' | 'stop'>[] = []
  private watcher: FSWatcher | null = null
  private debounce: ReturnType<typeof setTimeout> | null = null
  private stopping = false
  readonly startedAt = Date.now()

  constructor(
    readonly settings: GatewaySettings,
    first: Program,
  ) {
    this.current = first
  }

  get program(): Program {
    return this.current
  }

  build(): Promise<BuildResult> {
    return buildProgram(this.settings.policies, {
      trustProxy: this.settings.trustProxy,
      observer: this.settings.observer,
      healthChecks: this.settings.healthChecks,
      store: this.settings.store,
      perWorkerStore: this.settings.perWorkerStore,
    })
  }

  private reloads: Promise<unknown> = Promise.resolve()

  // Builds aside; swaps only when the new program is clean. The old one finishes its requests.
  // Reloads run one after another, each reading the files as they are when it starts.
  reload(reason: string): Promise<BuildResult> {
    const next = this.reloads.then(() => this.reloadNow(reason))
    this.reloads = next.catch(() => {})
    return next
  }

  private async reloadNow(reason: string): Promise<BuildResult> {
    let result: BuildResult
    try {
      result = await this.build()
    } catch (err) {
      console.error(`portcullis: reload (${reason}) failed: ${(err as Error).message}; still serving version ${this.current.version}`)
      this.settings.metrics.inc('gateway_reload_failures_total')
      return { diagnostics: [{ code: 'load-failed', message: (err as Error).message, notes: [] }] }
    }
    if (result.diagnostics) {
      console.error(
        `portcullis: reload (${reason}) rejected; still serving version ${this.current.version}\n${renderDiagnostics(result.diagnostics)}`,
      )
      this.settings.metrics.inc('gateway_reload_failures_total')
      return result
    }
    const old = this.current
    this.current = result.program
    this.settings.metrics.inc('gateway_reloads_total')
    this.settings.afterReload?.()
    console.error(`portcullis: reloaded (${reason}): version ${result.program.version}, ${result.program.routes.length} routes`)
    void old.dispose()
    return result
  }

  metricsText(): string {
    if (!this.settings.workerMetrics) return this.settings.metrics.render()
    const total = new Metrics()
    total.add(this.settings.metrics.snapshot())
    this.settings.workerMetrics(total)
    return total.render()
  }

  listen(): void {
    const { host, port, tls } = this.settings
    type PeerOf = (req: Request, server: Server<WebSocketLink>) => Peer | null
    const handler = (peerOf: PeerOf) => (req: Request, server: Server<WebSocketLink>) => {
      const peer = peerOf(req, server)
      // Only behind the client-certificate listener: a loopback connection that did not come through it.
      if (peer === null) return new Response(null, { status: 421, headers: { connection: 'close' } })
      const asked = req.headers.get('upgrade')
      // An upgrade counts only when Connection names it (RFC 9110 7.8); h2c is never tunnelled:
      // like any server may, the gateway ignores that one.
      if (asked === null || asked.toLowerCase() === 'h2c' || !/(^|,)\s*upgrade\s*(,|$)/i.test(req.headers.get('connection') ?? '')) {
        return this.current.handle(req, peer)
      }
      const upgrade: Upgrade = (link, headers) => server.upgrade(req, { data: link, headers })
      peer.upgrade = upgrade
      return this.current.handle(req, peer)
    }
    const direct =
      (tls: boolean): PeerOf =>
      (req, server) => ({ ip: server.requestIP(req)?.address ?? '', tls, port: server.port })
    const common = {
      hostname: host,
      reusePort: this.settings.reusePort,
      idleTimeout: this.settings.idleTimeout ?? 120,
      // Bodies stream through; `limit body` is the policy's limit, not the listener's.
      maxRequestBodySize: Number.MAX_SAFE_INTEGER,
      websocket: websocketHandlers,
      error: (err: Error) => {
        console.error(`portcullis: ${err.stack ?? err}`)
        return new GatewayError('internal_error', 'the gateway failed to handle this request').toResponse(crypto.randomUUID())
      },
    }
    try {
      this.servers.push(Bun.serve({ ...common, port, fetch: handler(direct(false)) }))
    } catch (err) {
      throw new Error(`cannot listen on ${host}:${port}: ${(err as Error).message}`)
    }
    if (tls) {
      // With --client-ca the listener asks for a client certificate but does not demand one.
      const clientAuth = tls.clientCa ? { ca: readFileSync(tls.clientCa, 'utf8'), requestCert: true, rejectUnauthorized: false } : {}
      const options = { cert: readFileSync(tls.cert, 'utf8'), key: readFileSync(tls.key, 'utf8'), ...clientAuth }
      try {
        if (!tls.clientCa) this.servers.push(Bun.serve({ ...common, port: tls.port, tls: options, fetch: handler(direct(true)) }))
        // Bun.serve cannot tell which certificate a client presented: TLS ends in a listener
        // that can, in front of a Bun.serve on loopback (client-cert.ts).
        else
          this.servers.push(
            listenWithClientCerts({
              hostname: host,
              port: tls.port,
              reusePort: this.settings.reusePort,
              tls: options,
              handshakeTimeout: common.idleTimeout,
              serve: (hostname, connection) => {
                const bridged: PeerOf = (req, server) => {
                  const c = connection(req, server)
                  return c ? { ip: c.ip, tls: true, port: c.port, clientCert: c.clientCert } : null
                }
                return Bun.serve({ ...common, hostname, port: 0, reusePort: false, fetch: handler(bridged) })
              },
            }),
          )
      } catch (err) {
        throw new Error(
          `cannot start the TLS listener on ${host}:${tls.port} (--tls-cert ${tls.cert}, --tls-key ${tls.key}): ${(err as Error).message}`,
        )
      }
    }
  }

  get urls(): string[] {
    return this.servers.map((s) => s.url.href.replace(/\/$/, ''))
  }

  watchPolicies(): void {
    if (!this.settings.watch) return
    this.watcher = watch(this.settings.policies, { recursive: true }, () => {
      if (this.debounce) clearTimeout(this.debounce)
      this.debounce = setTimeout(() => void this.reload('files changed'), 150)
    })
  }

  // Stop accepting, let in-flight requests finish, flush the log.
  async stop(): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    this.watcher?.close()
    if (this.debounce) clearTimeout(this.debounce)
    // Requests in flight get DRAIN_MS to finish; a response that never ends (an event stream) is then cut.
    const drained = Promise.all(this.servers.map((s) => s.stop(false)))
    const timer = setTimeout(() => {
      console.error(`portcullis: requests still open after ${DRAIN_MS / 1000}s; closing them`)
      for (const s of this.servers) void s.stop(true)
    }, DRAIN_MS)
    await drained
    clearTimeout(timer)
    await Promise.race([this.current.dispose(), Bun.sleep(100)])
    await this.settings.log.flush()
    await this.settings.store.close()
  }
}
