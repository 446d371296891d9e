// The serving process: listeners, the current Program, reload (build aside → swap → dispose).
import { watch, type FSWatcher, readFileSync } from 'node:fs'
import { basename, dirname, resolve, sep } from 'node:path'
import { buildProgram, type BuildResult } from '../compile/build-program.ts'
import type { AccessLog } from '../log/access-log.ts'
import { Metrics } from '../metrics/metrics.ts'
import { diagnosticJson, renderDiagnostics } from '../policy/diagnostics.ts'
import { describeChanges, programChanges, type ReloadChanges } from '../runtime/program-changes.ts'
import { event, failure, warn } from '../log/events.ts'
import type { RequestObserver } from '../runtime/handle.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import { websocketHandlers, type Upgrade, type WebSocketLink } from '../runtime/websocket.ts'
import type { IpMatcher } from '../runtime/ip.ts'
import type { Program } from '../runtime/program.ts'
import { available, type Target } from '../runtime/upstream.ts'
import type { Peer } from '../runtime/request.ts'
import { listenWithClientCerts } from './client-cert.ts'
import type { Store } from '../store/store.ts'
import type { SinkManager } from '../log/sinks/manager.ts'
import type { SinkStatus } from '../log/sinks/sink.ts'
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
  sinks?: SinkManager // `log to` sinks: they outlive programs, closed (spooled) at stop
  // With --workers: tell the serving processes to reload, and add up their metrics.
  afterReload?: () => void
  workerMetrics?: (into: Metrics) => void
  // --workers primary: the workers' sinks (the primary's own log nothing).
  workerSinks?: () => SinkStatus[]
}

const DRAIN_MS = 30_000

export class Gateway {
  private current: Program
  private servers: Pick<Server<WebSocketLink>, 'url' | 'stop'>[] = []
  private watcher: FSWatcher | null = null
  // Directories of files the program uses outside the policy directory (scripts, their imports).
  private outside = new Map<string, { watcher: FSWatcher; names: Set<string> }>()
  private debounce: ReturnType<typeof setTimeout> | null = null
  private stopping = false
  readonly startedAt = Date.now()

  constructor(
    readonly settings: GatewaySettings,
    first: Program,
  ) {
    this.current = first
    // The serving processes report their upstreams (the --workers primary sends nothing upstream).
    if (settings.healthChecks !== false) this.collectUpstreamMetrics()
  }

  private collectUpstreamMetrics(): void {
    const m = this.settings.metrics
    const each = (value: (t: Target) => number) => () =>
      this.current.pools.flatMap((p) => p.targets.map((t) => ({ labels: { upstream: p.name, target: `${t.origin}${t.basePath}` }, value: value(t) })))
    m.collect(
      'gateway_upstream_target_healthy',
      'gauge',
      '1 while a target is in the rotation (health checks pass, not ejected by failed tries), else 0.',
      each((t) => (available(t, performance.now()) ? 1 : 0)),
    )
    m.collect(
      'gateway_upstream_target_ejected',
      'gauge',
      '1 while failed tries keep a target out of the rotation (passive health), else 0.',
      each((t) => (t.state.ejectedUntil > performance.now() ? 1 : 0)),
    )
    m.collect(
      'gateway_upstream_active_requests',
      'gauge',
      'Requests waiting for a target to answer.',
      each((t) => t.state.active),
    )
    m.collect(
      'gateway_upstream_attempts_total',
      'counter',
      'Tries sent to a target, retries included.',
      each((t) => t.state.attempts),
    )
    m.collect(
      'gateway_upstream_failures_total',
      'counter',
      'Tries that got no answer, or a 502, 503 or 504.',
      each((t) => t.state.failures),
    )
    m.collect(
      'gateway_upstream_retries_total',
      'counter',
      'Tries that retried a request on this target after another try failed.',
      each((t) => t.state.retries),
    )
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
      sinks: this.settings.sinks,
    })
  }

  private reloads: Promise<unknown> = Promise.resolve()
  // The reload that failed most recently, while the files stay broken (cleared by a good one).
  // `text`: the diagnostics as `gateway check` prints them.
  rejected: { since: string; reason: string; diagnostics: object[]; text: string } | null = null
  // What the last applied reload changed.
  lastChanges: ReloadChanges | null = null
  // When the program serving now was loaded, and the last applied reload (for GET /reloads).
  loadedAt = new Date().toISOString()
  lastReload: { at: string; source: string; changes: ReloadChanges } | null = null

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
      const message = (err as Error).message
      failure('reload', `reload (${reason}) failed: ${message}; still serving version ${this.current.version}`, {
        reason,
        version: this.current.version,
      })
      this.settings.metrics.incLabelled('gateway_reloads_total', { result: 'failed' })
      const diagnostics = [{ code: 'load-failed', message, notes: [] }]
      this.rejected ??= { since: new Date().toISOString(), reason, diagnostics: [], text: '' }
      this.rejected.diagnostics = diagnostics.map((d) => ({ message: d.message }))
      this.rejected.text = `${message}\n`
      return { diagnostics }
    }
    if (result.diagnostics) {
      const rendered = renderDiagnostics(result.diagnostics)
      warn('reload', `reload (${reason}) rejected; still serving version ${this.current.version}\n${rendered}`, {
        reason,
        version: this.current.version,
        diagnostics: result.diagnostics.map(diagnosticJson),
      })
      this.settings.metrics.incLabelled('gateway_reloads_total', { result: 'rejected' })
      // Since the first rejection of a series: the files have been broken since then.
      this.rejected ??= { since: new Date().toISOString(), reason, diagnostics: [], text: '' }
      this.rejected.diagnostics = result.diagnostics.map(diagnosticJson)
      this.rejected.text = rendered
      return result
    }
    const old = this.current
    this.current = result.program
    this.rejected = null
    this.watchOutside()
    const changes = programChanges(old.summary, result.program.summary)
    this.lastChanges = changes
    this.loadedAt = new Date().toISOString()
    this.lastReload = { at: this.loadedAt, source: reason, changes }
    this.settings.metrics.incLabelled('gateway_reloads_total', { result: 'applied' })
    this.settings.afterReload?.()
    event('reload', `reloaded (${reason}): version ${result.program.version}, ${result.program.routes.length} routes; ${describeChanges(changes)}`, {
      reason,
      version: result.program.version,
      routes: result.program.routes.length,
      changes,
    })
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
    // One per listener. Its port is read once: `server.port` is a native getter (~2 µs a call).
    const direct = (tls: boolean): PeerOf => {
      let port = -1
      return (req, server) => {
        if (port === -1) port = server.port ?? 0
        return { ip: server.requestIP(req)?.address ?? '', tls, port }
      }
    }
    const common = {
      hostname: host,
      reusePort: this.settings.reusePort,
      idleTimeout: this.settings.idleTimeout ?? 120,
      // Bodies stream through; `limit body` is the policy's limit, not the listener's.
      maxRequestBodySize: Number.MAX_SAFE_INTEGER,
      websocket: websocketHandlers,
      error: (err: Error) => {
        failure('request', `${err.stack ?? err}`)
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
    this.watcher = watch(this.settings.policies, { recursive: true }, () => this.filesChanged())
    this.watchOutside()
  }

  private filesChanged(): void {
    if (this.debounce) clearTimeout(this.debounce)
    this.debounce = setTimeout(() => void this.reload('files changed'), 150)
  }

  // Files the program is made from outside the policy directory (a script's, or a module it
  // imports): their directories are watched, for those names (an editor may replace a file
  // rather than write it). Set again by each program that is applied.
  private watchOutside(): void {
    if (!this.watcher) return
    const root = resolve(this.settings.policies) + sep
    const wanted = new Map<string, Set<string>>()
    for (const f of this.current.files) {
      if (f.startsWith(root)) continue
      const names = wanted.get(dirname(f)) ?? new Set<string>()
      wanted.set(dirname(f), names.add(basename(f)))
    }
    for (const [dir, w] of this.outside)
      if (!wanted.has(dir)) {
        w.watcher.close()
        this.outside.delete(dir)
      }
    for (const [dir, names] of wanted) {
      const have = this.outside.get(dir)
      if (have) {
        have.names = names
        continue
      }
      try {
        const entry = { names, watcher: watch(dir, (_e, name) => (name === null || entry.names.has(String(name)) ? this.filesChanged() : undefined)) }
        this.outside.set(dir, entry)
      } catch (err) {
        warn('watch', `cannot watch ${dir} for changes: ${(err as Error).message}`)
      }
    }
  }

  // Stop accepting, let in-flight requests finish, flush the log.
  async stop(): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    this.watcher?.close()
    for (const w of this.outside.values()) w.watcher.close()
    if (this.debounce) clearTimeout(this.debounce)
    // Requests in flight get DRAIN_MS to finish; a response that never ends (an event stream) is then cut.
    const drained = Promise.all(this.servers.map((s) => s.stop(false)))
    const timer = setTimeout(() => {
      warn('stop', `requests still open after ${DRAIN_MS / 1000}s; closing them`)
      for (const s of this.servers) void s.stop(true)
    }, DRAIN_MS)
    await drained
    clearTimeout(timer)
    await Promise.race([this.current.dispose(), Bun.sleep(100)])
    await this.settings.sinks?.close()
    await this.settings.log.flush()
    await this.settings.store.close()
  }
}
