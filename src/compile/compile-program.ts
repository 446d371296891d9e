// Checked program → runtime Program: upstream pools, per-route Plans, the router.
import type { CheckedProgram, CheckedRoute } from '../check/check-program.ts'
import type { CompileContext, SessionSettings } from '../directives/define.ts'
import { describeSpan } from '../policy/source.ts'
import {
  STAGES,
  type AccessFn,
  type BodyStep,
  type CompiledRoute,
  type Plan,
  type PreflightFn,
  type ResponseFn,
  type Stage,
} from '../runtime/context.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import { createHandler, type RequestObserver } from '../runtime/handle.ts'
import { canonicalName } from '../runtime/headers.ts'
import type { IpMatcher } from '../runtime/ip.ts'
import { Program } from '../runtime/program.ts'
import { Router } from '../runtime/router.ts'
import { createPool, DEFAULT_PASSIVE, DEFAULT_TIMEOUTS, type UpstreamPool } from '../runtime/upstream.ts'
import { compileTemplate } from './templates.ts'
import { guardedContext, guardedName, guardStep, terminalOf } from './conditions.ts'
import { programSummary } from './summary.ts'
import { compileFileApp } from './apps.ts'
import { readSecret, type Env } from '../policy/secrets.ts'
import { AppIndex, type AppDirectory } from '../runtime/identity.ts'
import { appDirectory, type StoreApps } from '../runtime/store-apps.ts'
import type { Store } from '../store/store.ts'
import type { TierRate } from '../runtime/limits.ts'
import type { SinkManager, SinkUse } from '../log/sinks/manager.ts'
import type { SinkInput } from '../log/sinks/spec.ts'

export interface CompileOptions {
  trustProxy: IpMatcher | null
  observer: RequestObserver
  version: number
  // Tests point named upstreams at mock servers: name → base URL.
  upstreams?: Readonly<Record<string, string>>
  // false: this process runs no active health checks (the --workers primary, which serves nothing).
  healthChecks?: boolean
  store: Store
  storeApps: StoreApps
  env: Env
  now: () => number
  // The process's sinks (they outlive programs); `log to` takes them from here.
  sinks: SinkManager
}

function perStage<T>(): Record<Stage, T[]> {
  return Object.fromEntries(STAGES.map((s) => [s, []])) as unknown as Record<Stage, T[]>
}

interface Shared {
  session: SessionSettings | null
  apps: AppDirectory
  opts: CompileOptions
  tiers: ReadonlyMap<string, TierRate | 'unlimited'>
  sink(name: string): SinkInput
  files: Set<string> // what the program is made from besides the policies (Program.files)
}

function compileRoute(
  r: CheckedRoute,
  pools: (name: string) => UpstreamPool,
  inline: (u: URL) => UpstreamPool,
  disposers: (() => void)[],
  shared: Shared,
): CompiledRoute {
  const state = new Map<string, unknown>()
  const after = new Map<string, AccessFn>()
  const first = new Map<string, ResponseFn>()
  let preflight: PreflightFn | undefined
  const ctx: CompileContext = {
    route: { ...r.info, id: r.id },
    apps: shared.apps,
    store: shared.opts.store,
    now: shared.opts.now,
    trustProxy: shared.opts.trustProxy,
    tiers: shared.tiers,
    routeState: (name, init) => {
      if (!state.has(name)) state.set(name, init())
      return state.get(name) as never
    },
    afterAccess: (name, fn) => void after.set(name, fn),
    preflight: (fn) => void (preflight = fn),
    everyAnswer: (name, fn) => void first.set(name, fn),
    secret: (ref) => readSecret(ref, shared.opts.env)!,
    upstream: pools,
    inlineUpstream: inline,
    session: shared.session,
    sink: shared.sink,
    template: (t, mode) => compileTemplate(t, mode),
    onDispose: (fn) => disposers.push(fn),
    dependsOn: (path) => void shared.files.add(path),
  }
  const fns = perStage<unknown>()
  const stageNames = perStage<string>()
  const protectedHeaders = new Set<string>()
  // Defaults come first in `uses`, then the route's own, in source order.
  for (const stage of STAGES) {
    for (const u of r.uses) {
      if (u.def.stage !== stage) continue
      const fn = u.def.compile(u.cfg, u.guard ? guardedContext(ctx, u.def.name) : ctx)
      if (fn !== null) fns[stage].push(u.guard ? guardStep(fn, u.guard, u.def.terminal) : fn)
      stageNames[stage].push(guardedName(u.def.describe?.(u.cfg) ?? u.def.name, u.guard))
      for (const h of u.def.setsHeaders?.(u.cfg) ?? []) protectedHeaders.add(canonicalName(h))
    }
  }
  fns.access.push(...after.values())
  const bodySteps = fns.response.filter((f) => typeof f !== 'function') as BodyStep[]
  const plan: Plan = Object.freeze({
    access: fns.access as Plan['access'],
    rewrite: fns.rewrite as Plan['rewrite'],
    lookups: bodySteps.flatMap((s) => (s.before ? [s.before.bind(s)] : [])),
    terminal: terminalOf(fns.proxy, stageNames.proxy) ?? unreachable,
    response: [...first.values(), ...fns.response] as Plan['response'],
    log: fns.log as Plan['log'],
    ...(preflight ? { preflight } : {}),
  })
  return Object.freeze({
    id: r.id,
    methods: r.methods,
    host: r.host,
    pattern: r.patternText,
    location: describeSpan(r.patternSpan),
    plan,
    stageNames,
    protectedHeaders,
    forwardVerdicts: new Map(),
  })
}

// A route without a terminal always ends in its access stage (`status retired`), so this never runs.
function unreachable(): never {
  throw new GatewayError('internal_error', 'the route has no terminal directive')
}

export function compileProgram(checked: CheckedProgram, opts: CompileOptions): Program {
  const disposers: (() => void)[] = []
  const pools = new Map<string, UpstreamPool>()
  for (const name of Object.keys(opts.upstreams ?? {})) {
    if (!checked.upstreams.has(name)) throw new Error(`cannot override upstream '${name}': the policies declare no such upstream`)
  }
  for (const [name, u] of checked.upstreams) {
    const override = opts.upstreams?.[name]
    const pool = createPool({
      name,
      targets: override ? [{ url: new URL(override), weight: 1 }] : u.targets,
      timeouts: {
        connectMs: u.connectTimeoutMs ?? DEFAULT_TIMEOUTS.connectMs,
        headersMs: u.timeoutMs ?? DEFAULT_TIMEOUTS.headersMs,
        idleMs: u.idleTimeoutMs ?? u.timeoutMs ?? DEFAULT_TIMEOUTS.idleMs,
      },
      balance: u.balance,
      retry: u.retry ?? null,
      retryUnsafe: u.retryUnsafe,
      health: u.health ?? null,
      passive: u.passive === undefined ? DEFAULT_PASSIVE : u.passive,
      probes: opts.healthChecks !== false,
    })
    pools.set(name, pool)
    disposers.push(() => pool.dispose())
  }
  const inlinePools = new Map<string, UpstreamPool>()
  const inline = (url: URL) => {
    let p = inlinePools.get(url.href)
    if (!p) {
      p = createPool({
        name: url.origin,
        targets: [{ url, weight: 1 }],
        timeouts: DEFAULT_TIMEOUTS,
        balance: 'round-robin',
        retry: null,
        retryUnsafe: false,
        health: null,
        passive: null,
      })
      inlinePools.set(url.href, p)
    }
    return p
  }
  const fileApps = new AppIndex([...checked.apps].map(([name, c]) => compileFileApp(name, c, opts.env)))
  const apps = appDirectory(fileApps, opts.storeApps)
  const tiers = new Map<string, TierRate | 'unlimited'>(
    [...checked.tiers].map(([name, t]) => [name, t.rate === null ? 'unlimited' : { limit: t.rate.limit, windowMs: t.rate.windowMs, burst: t.burst }]),
  )
  const s = checked.session
  const session: SessionSettings | null = s && {
    verify: pools.get(s.upstream)!,
    verifyPath: s.path,
    ttlMs: s.ttlMs,
    refreshMs: s.refreshMs,
    singleSignOn: s.singleSignOn,
  }
  // A program takes each sink it logs to once, and gives it back when it is disposed.
  const sinkUses = new Map<string, SinkUse>()
  const sink = (name: string): SinkInput => {
    let use = sinkUses.get(name)
    if (!use) {
      const taken = opts.sinks.acquire(checked.sinks.get(name)!)
      sinkUses.set(name, (use = taken))
      disposers.push(() => taken.release())
    }
    return use.input
  }
  const router = new Router()
  const routes: CompiledRoute[] = []
  const files = new Set<string>()
  for (const r of checked.routes) {
    const compiled = compileRoute(r, (n) => pools.get(n)!, inline, disposers, { apps, opts, tiers, session, sink, files })
    router.add(compiled, r.pattern.segments)
    routes.push(compiled)
  }
  const inflight = { count: 0, idle: null }
  const handler = createHandler({ router, trustProxy: opts.trustProxy, observer: opts.observer, inflight })
  return new Program(
    opts.version,
    Object.freeze(routes),
    handler,
    disposers,
    inflight,
    apps,
    new Set(checked.tiers.keys()),
    programSummary(checked),
    [...pools.values()],
    [...files],
  )
}
