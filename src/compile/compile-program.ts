// Checked program → runtime Program: upstream pools, per-route Plans, the router.
import type { CheckedProgram, CheckedRoute } from '../check/check-program.ts'
import type { Guard } from '../check/conditions.ts'
import type { CompileContext, SessionSettings, TestJwtKey } from '../directives/define.ts'
import { describeSpan, type Span } from '../policy/source.ts'
import { recordPreflight, recordRouteStep, recordStep, type StepInfo, type UpstreamNamer } from '../runtime/decisions.ts'
import {
  STAGES,
  type AccessFn,
  type BodyStep,
  type CompiledRoute,
  type Plan,
  type PreflightFn,
  type ResponseFn,
  type EarlyAnswerFn,
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
import type { RouteTracing } from '../runtime/route-tracing.ts'
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
  // Kit builds only: the testing kit's JWT key, accepted by every `require jwt`.
  testJwtKey?: TestJwtKey | null
  // The process's sinks (they outlive programs); `log to` takes them from here.
  sinks: SinkManager
  // Record what each directive decides per request (Program.explain); off: nothing is wrapped.
  explain?: boolean
  // Where each target's requests go instead (gateway explain's mock upstreams: nothing real is
  // contacted); `upstream` is null for a `proxy URL`. Applied after `upstreams`.
  retarget?: (upstream: string | null, url: URL) => URL
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
  namer: UpstreamNamer // explain only: names the upstream behind a proxied origin
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
  const early = new Map<string, EarlyAnswerFn>()
  let preflight: PreflightFn | undefined
  let tracing: RouteTracing | null = null
  const ctx: CompileContext = {
    route: { ...r.info, id: r.id },
    apps: shared.apps,
    store: shared.opts.store,
    now: shared.opts.now,
    testJwtKey: shared.opts.testJwtKey ?? null,
    trustProxy: shared.opts.trustProxy,
    tiers: shared.tiers,
    routeState: (name, init) => {
      if (!state.has(name)) state.set(name, init())
      return state.get(name) as never
    },
    afterAccess: (name, fn) => void after.set(name, fn),
    onEarlyAnswer: (name, fn) => void early.set(name, fn),
    preflight: (fn) => void (preflight = fn),
    everyAnswer: (name, fn) => void first.set(name, fn),
    secret: (ref) => readSecret(ref, shared.opts.env)!,
    upstream: pools,
    inlineUpstream: inline,
    session: shared.session,
    sink: shared.sink,
    template: (t, mode) => compileTemplate(t, mode),
    tracing: (setting) => void (tracing = setting),
    onDispose: (fn) => disposers.push(fn),
    dependsOn: (path) => void shared.files.add(path),
  }
  const fns = perStage<unknown>()
  const stageNames = perStage<string>()
  const protectedHeaders = new Set<string>()
  // With explain: each step is wrapped in a recorder that names its use (src/runtime/decisions.ts).
  const explain = shared.opts.explain === true ? new Explained(shared.namer) : null
  // Defaults come first in `uses`, then the route's own, in source order.
  for (const stage of STAGES) {
    for (const u of r.uses) {
      if (u.def.stage !== stage) continue
      const name = guardedName(u.def.describe?.(u.cfg) ?? u.def.name, u.guard)
      const info = explain && { stage, directive: name, at: lineOf(u.statement) }
      const fn = u.def.compile(u.cfg, u.guard ? guardedContext(ctx, u.def.name) : info ? explain.registering(ctx, info) : ctx)
      if (fn !== null) fns[stage].push(info ? explain.step(fn, info, u.guard, u.def.terminal) : u.guard ? guardStep(fn, u.guard, u.def.terminal) : fn)
      stageNames[stage].push(name)
      for (const h of u.def.setsHeaders?.(u.cfg) ?? []) protectedHeaders.add(canonicalName(h))
    }
  }
  if (explain) {
    explain.routeWide(after, first)
    if (preflight) preflight = explain.preflight(preflight)
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
    early: [...early.values()],
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
    ownsTraceContext: protectedHeaders.has('traceparent') || protectedHeaders.has('tracestate'),
    tracing,
    ...(explain ? { steps: explain.steps() } : {}),
  })
}

function lineOf(span: Span): string {
  return `${span.file.path}:${span.file.position(span.offset).line}`
}

// One route's recorders, and its steps in plan order (what a trace lists as not reached).
class Explained {
  private readonly infos = perStage<StepInfo>()
  private readonly lookups: StepInfo[] = []
  private readonly first: StepInfo[] = []
  private readonly after: StepInfo[] = []
  // The uses that registered each route-wide step ('access NAME', 'response NAME', 'preflight').
  private readonly registrants = new Map<string, StepInfo[]>()

  constructor(private readonly namer: UpstreamNamer) {}

  step(fn: unknown, info: StepInfo, guard: Guard | undefined, terminal = false): unknown {
    const lookup = { ...info, stage: 'proxy' as const }
    const wrapped = recordStep(fn, info, guard ? (inner) => guardStep(inner, guard, terminal) : null, { namer: this.namer, lookup, terminal })
    this.infos[info.stage].push(info)
    if (typeof fn === 'object' && fn !== null && (fn as BodyStep).before) this.lookups.push(lookup)
    return wrapped
  }

  // The compile context of one use, noting the route-wide steps it registers.
  registering(ctx: CompileContext, info: StepInfo): CompileContext {
    const note = (key: string) => {
      const list = this.registrants.get(key)
      if (!list) this.registrants.set(key, [info])
      else if (!list.includes(info)) list.push(info)
    }
    return {
      ...ctx,
      afterAccess: (name, fn) => (note(`access ${name}`), ctx.afterAccess(name, fn)),
      everyAnswer: (name, fn) => (note(`response ${name}`), ctx.everyAnswer(name, fn)),
      preflight: (fn) => (note('preflight'), ctx.preflight(fn)),
    }
  }

  // A route-wide step is named by the uses that registered it: `throttle … + quota …`.
  private merged(key: string, stage: StepInfo['stage']): StepInfo {
    const uses = this.registrants.get(key) ?? []
    return { stage, directive: uses.map((u) => u.directive).join(' + ') || key, at: uses[0]?.at ?? '' }
  }

  routeWide(after: Map<string, AccessFn>, first: Map<string, ResponseFn>): void {
    for (const [name, fn] of after) {
      const info = this.merged(`access ${name}`, 'access')
      after.set(name, recordRouteStep(fn, info))
      this.after.push(info)
    }
    for (const [name, fn] of first) {
      const info = this.merged(`response ${name}`, 'response')
      first.set(name, recordRouteStep(fn, info))
      this.first.push(info)
    }
  }

  preflight(fn: PreflightFn): PreflightFn {
    return recordPreflight(fn, this.merged('preflight', 'access'))
  }

  steps(): StepInfo[] {
    const i = this.infos
    return [...i.access, ...this.after, ...i.rewrite, ...this.lookups, ...i.proxy, ...this.first, ...i.response, ...i.log]
  }
}

function retargeted(upstream: string | null, targets: { url: URL; weight: number }[], opts: CompileOptions): { url: URL; weight: number }[] {
  const to = opts.retarget
  return to ? targets.map((t) => ({ ...t, url: to(upstream, t.url) })) : targets
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
      targets: retargeted(name, override ? [{ url: new URL(override), weight: 1 }] : u.targets, opts),
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
        targets: retargeted(null, [{ url, weight: 1 }], opts),
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
  // Explain only: `orders http://10.0.0.5:8080/base` for an origin a request was proxied to.
  const namer = (origin: string): string => {
    // A `proxy URL` has no name: its pool is named after the URL it was written with.
    const named = (p: UpstreamPool) => (pools.get(p.name) === p ? p.name : '')
    const hits = [...pools.values(), ...inlinePools.values()].flatMap((p) =>
      p.targets.filter((t) => t.origin === origin).map((t) => ({ name: named(p), base: t.basePath })),
    )
    const names = new Set(hits.map((h) => h.name))
    const bases = new Set(hits.map((h) => h.base))
    const name = names.size === 1 ? [...names][0]! : ''
    return `${name ? `${name} ` : ''}${origin}${bases.size === 1 ? [...bases][0]! : ''}`
  }
  const router = new Router()
  const routes: CompiledRoute[] = []
  const files = new Set<string>()
  for (const r of checked.routes) {
    const compiled = compileRoute(r, (n) => pools.get(n)!, inline, disposers, { apps, opts, tiers, session, sink, files, namer })
    router.add(compiled, r.pattern.segments)
    routes.push(compiled)
  }
  const inflight = { count: 0, idle: null }
  const handler = createHandler({ router, trustProxy: opts.trustProxy, observer: opts.observer, inflight, explain: opts.explain === true })
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
    opts.explain === true,
  )
}
