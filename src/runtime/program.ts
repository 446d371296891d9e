// A compiled policy program: the route table and its handler. Immutable once built;
// a reload builds a new one and swaps the reference.
import type { CompiledRoute, Stage } from './context.ts'
import type { Inflight, Peer } from './handle.ts'
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
    readonly handle: (req: Request, peer: Peer) => Promise<Response | undefined>,
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
  ) {}

  get inflight(): number {
    return this.inflightRequests.count
  }

  // In-process use (tests, `bun test` of user policies): no server needed.
  // Without a listener nothing can be upgraded, so there is always a Response.
  fetch(req: Request | string, peer: Peer = { ip: '127.0.0.1', tls: false }): Promise<Response> {
    return this.handle(typeof req === 'string' ? new Request(req) : req, { ...peer, upgrade: null }) as Promise<Response>
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
