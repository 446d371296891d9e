// A compiled policy program: the route table and its handler. Immutable once built;
// a reload builds a new one and swaps the reference.
import type { CompiledRoute, RequestContext, Stage } from './context.ts'
import type { Explainer, Inflight, Peer } from './handle.ts'
import type { DecisionTrace } from './decisions.ts'
import type { GatewayError } from './gateway-error.ts'
import type { AppDirectory } from './identity.ts'
import type { UpstreamPool } from './upstream.ts'

export interface RouteRow {
  method: string
  host: string | null
  pattern: string
  location: string
  stages: Record<Stage, string[]>
  terminal: string
}

export interface ProgramParts {
  routes: ReadonlyMap<string, string>
  upstreams: ReadonlyMap<string, string>
  apps: ReadonlyMap<string, string>
}

export class Program {
  constructor(
    readonly version: number,
    readonly routes: readonly CompiledRoute[],
    readonly handle: (req: Request, peer: Peer, seen?: Explainer) => Promise<Response | undefined>,
    private readonly disposers: readonly (() => void)[],
    private readonly inflightRequests: Inflight,
    // File apps of this program, then the store's (shared, kept current).
    readonly apps: AppDirectory,
    // The tiers the policies declare (a store app may only name one of these).
    readonly tiers: ReadonlySet<string> = new Set(),
    // Fingerprints of the program's parts by name, for reload reports (compile/summary.ts).
    readonly summary: ProgramParts = { routes: new Map(), upstreams: new Map(), apps: new Map() },
    // The named upstreams' pools (their targets' health and counts feed /metrics).
    readonly pools: readonly UpstreamPool[] = [],
    // Files the program is made from besides the policies (scripts and what they import).
    readonly files: readonly string[] = [],
    // Built with `explain`: its requests record what each directive decided.
    readonly explains: boolean = false,
  ) {}

  get inflight(): number {
    return this.inflightRequests.count
  }

  // In-process use (tests, `bun test` of user policies): no server needed.
  // Without a listener nothing can be upgraded, so there is always a Response.
  fetch(req: Request | string, peer: Peer = { ip: '127.0.0.1', tls: false }): Promise<Response> {
    return this.handle(typeof req === 'string' ? new Request(req) : req, { ...peer, upgrade: null }) as Promise<Response>
  }

  // Like fetch, with the trace of what the route and each directive decided. The trace is taken
  // when the answer is returned: the log stage, which runs once the answer is delivered, is
  // listed as not reached. Only for a program built with `explain: true`.
  async explain(req: Request | string, peer: Peer = { ip: '127.0.0.1', tls: false }): Promise<{ response: Response; trace: DecisionTrace }> {
    if (!this.explains) throw new Error('Program.explain needs a program built with { explain: true } (buildProgram(dir, { explain: true }))')
    const request = typeof req === 'string' ? new Request(req) : req
    let ctx: RequestContext | null = null
    let miss: GatewayError | null = null
    const response = (await this.handle(request, { ...peer, upgrade: null }, (c, m) => {
      ctx = c
      miss = m
    })) as Response
    const url = new URL(request.url)
    const seen = ctx as RequestContext | null
    const steps = seen?.decisions ? [...seen.decisions] : []
    const ran = new Set(steps.map((s) => `${s.stage}\0${s.directive}\0${s.at}`))
    const notReached = (seen?.route.steps ?? []).filter((s) => !ran.has(`${s.stage}\0${s.directive}\0${s.at}`))
    return {
      response,
      trace: {
        request: { method: request.method, target: url.pathname + url.search },
        route: seen ? { id: seen.route.id, location: seen.route.location } : null,
        reason: seen ? null : this.missReason(miss, request),
        steps,
        notReached,
        status: response.status,
        gatewayError: response.headers.get('gateway-error') ?? seen?.gatewayError ?? null,
      },
    }
  }

  private missReason(miss: GatewayError | null, req: Request): string | null {
    if (miss === null) return null
    const hosts = this.routes.some((r) => r.host !== null)
    const host = req.headers.get('host') ?? new URL(req.url).host
    if (miss.code === 'no_route' && hosts) return `${miss.detail} at host ${host}`
    if (miss.code === 'method_not_allowed') return `${miss.detail} (allowed: ${miss.headers.allow})`
    return miss.detail
  }

  routeTable(): RouteRow[] {
    return this.routes.map((r) => ({
      method: r.methods === null ? '*' : r.methods.join(','),
      host: r.host,
      pattern: r.pattern,
      location: r.location,
      stages: r.stageNames,
      terminal: r.stageNames.proxy[0] ?? '',
    }))
  }

  // Waits for requests that started on this program, then releases its resources.
  async dispose(): Promise<void> {
    if (this.inflightRequests.count > 0) await new Promise<void>((resolve) => (this.inflightRequests.idle = resolve))
    for (const d of this.disposers) d()
  }
}
