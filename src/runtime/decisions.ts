// The decision trace: what each directive of a route decided for one request, recorded only by
// a program built with `explain` (the compiler then wraps every stage function in a recorder;
// without it nothing here runs). `Program.explain` and `gateway explain` read it.
import { STAGES, type AccessLogEntry, type BodyStep, type PreflightFn, type RequestContext, type ResponseFn, type Stage } from './context.ts'
import { GatewayError } from './gateway-error.ts'

// passed: the request went on; answered: the step made the answer (a terminal, a cached answer,
// a script's own response, a preflight); refused: a gateway error of the client's making (401,
// 403, 429 …); failed: the gateway or an upstream failed (5xx); skipped: a `when` guard did not hold.
export type StepOutcome = 'passed' | 'answered' | 'refused' | 'failed' | 'skipped'

// One directive use at its place in a route: how the route table names it and where it is written.
export interface StepInfo {
  readonly stage: Stage
  readonly directive: string
  readonly at: string // file.policy:LINE
}

export interface StepRecord {
  stage: Stage
  directive: string
  at: string
  outcome: StepOutcome
  status?: number
  gatewayError?: string // the Gateway-Error code
  detail?: string // a short why
}

// What an upstream received, as a caller that mocks it saw it (gateway explain's mock upstreams).
export interface ForwardedRequest {
  upstream: string
  method: string
  target: string // path and query as received
  headers: [string, string][]
  body?: string
}

export interface DecisionTrace {
  request: { method: string; target: string } // target: path[?query] as received
  // The route that took the request; null when none did (then `reason` says why: no route for
  // the path, the method not allowed there, a Host no route serves, a malformed request).
  route: { id: string; location: string } | null
  reason: string | null
  steps: StepRecord[] // in the order they ran
  // The route's steps that did not run before the answer was returned: the request ended first,
  // or (the log stage) they run only once a serving gateway has delivered the answer.
  notReached: StepInfo[]
  status: number
  gatewayError: string | null
  forwarded?: ForwardedRequest[]
}

function push(ctx: RequestContext, r: StepRecord): void {
  ;(ctx.decisions ??= []).push(r)
}

const FAILURES = new Set(['internal_error', 'bad_gateway', 'upstream_timeout', 'upstream_unavailable', 'store_unavailable'])

function record(info: StepInfo, outcome: StepOutcome, more: Partial<StepRecord> = {}): StepRecord {
  return { stage: info.stage, directive: info.directive, at: info.at, outcome, ...more }
}

function ofError(info: StepInfo, e: GatewayError): StepRecord {
  return record(info, FAILURES.has(e.code) ? 'failed' : 'refused', { status: e.status, gatewayError: e.code, detail: e.detail })
}

// What a step threw: a gateway error, a Response (an answer of its own), or a failure (500).
function ofThrown(info: StepInfo, err: unknown): StepRecord {
  if (err instanceof GatewayError) return ofError(info, err)
  if (err instanceof Response) return record(info, 'answered', { status: err.status, detail: 'answered with its own response' })
  const message = err instanceof Error ? err.message : String(err)
  return record(info, 'failed', { status: 500, gatewayError: 'internal_error', detail: message })
}

// Runs `call`, recording its result with `done` (sync or async) or what it threw.
function observe<T>(ctx: RequestContext, info: StepInfo, call: () => T | Promise<T>, done: (v: T) => StepRecord): T | Promise<T> {
  let r: T | Promise<T>
  try {
    r = call()
  } catch (err) {
    push(ctx, ofThrown(info, err))
    throw err
  }
  if (r instanceof Promise)
    return r.then(
      (v) => {
        push(ctx, done(v))
        return v
      },
      (err) => {
        push(ctx, ofThrown(info, err))
        throw err
      },
    )
  push(ctx, done(r))
  return r
}

// What an access step changed that says why it passed: the caller it identified, the limit decision.
function accessDetail(ctx: RequestContext, identified: boolean, limited: boolean): string | undefined {
  const parts: string[] = []
  if (!identified && ctx.identity) {
    const id = ctx.identity
    if (id.app) parts.push(`caller: app ${id.app.name}`)
    if (id.user) parts.push(`user ${id.user.id}`)
    if (!id.app && !id.user && id.jwt) parts.push(`token subject ${String(id.jwt.sub ?? '(none)')}`)
    parts.push(`via ${id.via}`)
  }
  if (!limited && ctx.limit) parts.push(`limit: ${ctx.limit.result.replaceAll('_', ' ')}${ctx.limit.tier ? ` (tier ${ctx.limit.tier})` : ''}`)
  return parts.length ? parts.join(', ') : undefined
}

function rewriteDetail(ctx: RequestContext, path: string, query: string | null): string | undefined {
  const parts: string[] = []
  if (ctx.upstreamPath !== path) parts.push(`path → ${ctx.upstreamPath}`)
  if (ctx.upstreamQuery !== query) parts.push(`query → ${ctx.upstreamQuery === null ? ctx.rawQuery : ctx.upstreamQuery || '(none)'}`)
  return parts.length ? parts.join(', ') : undefined
}

type AnyFn = (ctx: RequestContext, ...rest: never[]) => unknown

// An access step (what it identified or limited says why it passed) or a rewrite step (what it changed).
function recordCheck(fn: AnyFn, info: StepInfo, access: boolean): AnyFn {
  if (access)
    return (ctx) => {
      const identified = ctx.identity !== null
      const limited = ctx.limit !== null
      return observe(
        ctx,
        info,
        () => fn(ctx),
        (e) => (e instanceof GatewayError ? ofError(info, e) : record(info, 'passed', detailed(accessDetail(ctx, identified, limited)))),
      )
    }
  return (ctx) => {
    const path = ctx.upstreamPath
    const query = ctx.upstreamQuery
    return observe(
      ctx,
      info,
      () => fn(ctx),
      (e) => (e instanceof GatewayError ? ofError(info, e) : record(info, 'passed', detailed(rewriteDetail(ctx, path, query)))),
    )
  }
}

const detailed = (detail: string | undefined): Partial<StepRecord> => (detail === undefined ? {} : { detail })

// Names the upstream a request went to: `orders http://10.0.0.5:8080/base` from the origin the
// proxy logged (the compiler knows the pools' targets).
export type UpstreamNamer = (origin: string) => string

function recordTerminal(fn: AnyFn, info: StepInfo, namer: UpstreamNamer): AnyFn {
  return (ctx) => {
    const before = ctx.upstream
    return observe(
      ctx,
      info,
      () => fn(ctx) as Response | Promise<Response>,
      (res) => {
        const proxied = ctx.upstream !== null && ctx.upstream !== before
        if (!proxied) return record(info, 'answered', { status: res.status })
        const query = ctx.upstreamQuery === null ? ctx.rawQuery : ctx.upstreamQuery
        const target = `${namer(ctx.upstream!)}${ctx.upstreamPath}${query ? `?${query}` : ''}`
        return record(info, 'answered', { status: res.status, detail: `proxied to ${target} → ${res.status}` })
      },
    )
  }
}

function recordResponseFn(fn: ResponseFn, info: StepInfo): ResponseFn {
  return (ctx, headers, status) =>
    observe(
      ctx,
      info,
      () => fn(ctx, headers, status),
      () => record(info, 'passed'),
    )
}

function recordLookup(before: (ctx: RequestContext) => Response | null | Promise<Response | null>, info: StepInfo) {
  return (ctx: RequestContext) =>
    observe(
      ctx,
      info,
      () => before(ctx),
      (found) =>
        found
          ? record(info, 'answered', { status: found.status, detail: 'a stored answer' })
          : record(info, 'passed', { detail: 'no stored answer' }),
    )
}

function recordBodyStep(step: BodyStep, info: StepInfo, lookup: StepInfo): BodyStep {
  const before = step.before
  return {
    run: (ctx, res) =>
      observe(
        ctx,
        info,
        () => step.run(ctx, res),
        (out) => record(info, 'passed', { status: out.status }),
      ),
    ...(before ? { before: recordLookup(before.bind(step), lookup) } : {}),
  }
}

function recordLog(fn: (ctx: RequestContext, entry: AccessLogEntry) => void, info: StepInfo) {
  return (ctx: RequestContext, entry: AccessLogEntry) =>
    observe(
      ctx,
      info,
      () => fn(ctx, entry),
      () => record(info, 'passed'),
    )
}

export function recordPreflight(fn: PreflightFn, info: StepInfo): PreflightFn {
  return (ctx) =>
    observe(
      ctx,
      info,
      () => fn(ctx),
      (r) => (r instanceof GatewayError ? ofError(info, r) : record(info, 'answered', { status: r.status, detail: 'a CORS preflight' })),
    ) as Response | GatewayError
}

// A route-wide step registered by name (the throttle group after the access stage, the headers
// every answer gets): `info` names the uses that registered it.
export function recordRouteStep<F extends AnyFn>(fn: F, info: StepInfo): F {
  return RECORDERS[info.stage](fn, info, { namer: String, lookup: info, terminal: false }) as F
}

interface StepExtra {
  namer: UpstreamNamer
  // Names the before-the-terminal half of a body step (a cache lookup takes the terminal's place).
  lookup: StepInfo
  terminal: boolean // the use is a terminal (its guarded form is chosen by the compiler's terminalOf)
}

// The recorder of each stage's step shape.
const RECORDERS: Record<Stage, (step: unknown, info: StepInfo, extra: StepExtra) => unknown> = {
  access: (step, info) => recordCheck(step as AnyFn, info, true),
  rewrite: (step, info) => recordCheck(step as AnyFn, info, false),
  proxy: (step, info, extra) => recordTerminal(step as AnyFn, info, extra.namer),
  response: (step, info, extra) =>
    typeof step === 'function' ? recordResponseFn(step as ResponseFn, info) : recordBodyStep(step as BodyStep, info, extra.lookup),
  log: (step, info) => recordLog(step as (ctx: RequestContext, entry: AccessLogEntry) => void, info),
}

// A stage step that records what it decided. `guard` (a use inside `when`) makes the guarded
// step from the recording one: when it does not call it, the step is recorded as skipped.
export function recordStep(step: unknown, info: StepInfo, guard: ((inner: unknown) => unknown) | null, extra: StepExtra): unknown {
  const inner = RECORDERS[info.stage](step, info, extra)
  if (!guard) return inner
  // The guarded form calls the recording step synchronously when the guard holds: `ran` is
  // known as soon as it returns, before any other request can run.
  let ran = false
  const mark = <A extends unknown[], R>(f: (...a: A) => R) =>
    function (...a: A): R {
      ran = true
      return f(...a)
    }
  if (extra.terminal) {
    const g = guard(mark(inner as AnyFn)) as { guarded: (ctx: RequestContext) => boolean; terminal: AnyFn }
    return {
      terminal: g.terminal,
      guarded: (ctx: RequestContext) => {
        const holds = g.guarded(ctx)
        if (!holds) push(ctx, record(info, 'skipped', { detail: 'the guard does not hold' }))
        return holds
      },
    }
  }
  const skipped = (ctx: RequestContext, which: StepInfo) => {
    if (!ran) push(ctx, record(which, 'skipped', { detail: 'the guard does not hold' }))
  }
  if (typeof inner === 'function') {
    const g = guard(mark(inner as AnyFn)) as AnyFn
    return function (ctx: RequestContext, ...rest: never[]) {
      ran = false
      const r = g(ctx, ...rest)
      skipped(ctx, info)
      return r
    }
  }
  const body = inner as BodyStep
  const g = guard({
    run: mark(body.run),
    ...(body.before ? { before: mark(body.before) } : {}),
  }) as BodyStep
  const gBefore = g.before
  return {
    run: (ctx, res) => {
      ran = false
      const r = g.run(ctx, res)
      skipped(ctx, info)
      return r
    },
    ...(gBefore
      ? {
          before: (ctx: RequestContext) => {
            ran = false
            const r = gBefore(ctx)
            skipped(ctx, extra.lookup)
            return r
          },
        }
      : {}),
  } satisfies BodyStep
}

// ---- The text `gateway explain` prints, fit for 100 columns. ----

const WIDTH = 100
const DETAIL = 16 // where a step's directive (and its detail below it) starts
const MARKS: Record<StepOutcome, string> = { passed: '✓', answered: '→', refused: '✗', failed: '✗', skipped: '-' }
const LATER: ReadonlySet<Stage> = new Set(STAGES.slice(-1)) // the log stage, after delivery

function clip(s: string, width: number): string {
  return s.length <= width ? s : `${s.slice(0, width - 1)}…`
}

// Words wrapped to `width`, each line after the first indented by `indent`; a word longer than
// a line is cut.
function wrap(text: string, indent: number, width = WIDTH): string[] {
  const room = width - indent
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const w = clip(word, room)
    if (line && line.length + 1 + w.length > room) {
      lines.push(line)
      line = w
    } else line = line ? `${line} ${w}` : w
  }
  if (line) lines.push(line)
  return lines.map((l) => ' '.repeat(indent) + l)
}

// `  ✓ passed    directive …    file.policy:LINE`, the location right-aligned at column 100.
function stepLine(mark: string, word: string, directive: string, at: string): string {
  const head = `  ${mark} ${word.padEnd(11)} `
  const room = WIDTH - head.length - at.length - 2
  return `${head}${clip(directive, room).padEnd(room)}  ${at}`
}

function outcomeText(r: StepRecord): string | null {
  // A terminal's detail names its answer (`proxied to … → 200`).
  if (r.outcome === 'answered' && r.detail) return r.detail
  const parts: string[] = []
  if (r.status !== undefined && r.outcome !== 'passed') parts.push(String(r.status))
  if (r.gatewayError) parts.push(r.gatewayError)
  const head = parts.join(' ')
  if (r.detail) return head ? `${head}: ${r.detail}` : r.detail
  return head || null
}

export function renderTrace(t: DecisionTrace): string {
  const out: string[] = []
  out.push(clip(`${t.request.method} ${t.request.target}`, WIDTH))
  if (t.route) out.push(clip(`route ${t.route.id}  (${t.route.location})`, WIDTH))
  else out.push(...wrap(`no route: ${t.reason ?? 'none matched'}`, 0))
  for (const stage of STAGES) {
    const steps = t.steps.filter((s) => s.stage === stage)
    const missed = t.notReached.filter((s) => s.stage === stage)
    if (steps.length === 0 && missed.length === 0) continue
    out.push(stage)
    for (const s of steps) {
      out.push(stepLine(MARKS[s.outcome], s.outcome, s.directive, s.at))
      const why = outcomeText(s)
      if (why) out.push(...wrap(why, DETAIL))
    }
    for (const s of missed) out.push(stepLine('·', LATER.has(stage) ? 'not run' : 'not reached', s.directive, s.at))
    if (LATER.has(stage) && missed.length) out.push(...wrap('(the log stage runs once a serving gateway has delivered the answer)', DETAIL))
  }
  for (const f of t.forwarded ?? []) {
    out.push(clip(`upstream ${f.upstream} received ${f.method} ${f.target}`, WIDTH))
    for (const [n, v] of f.headers) out.push(clip(`  ${n}: ${v}`, WIDTH))
    if (f.body) out.push(...wrap(`body: ${f.body}`, 2))
  }
  out.push(`answer ${t.status}${t.gatewayError ? ` ${t.gatewayError}` : ''}`)
  return `${out.join('\n')}\n`
}
