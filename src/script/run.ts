// Running a script on a request: its stage function, the budget, and what its outcome means.
//
// A script runs on the gateway's thread. One that returns a promise is raced with its budget
// (watched by the upstream client's shared clock, 10 ms ticks) and cut off when it is over:
// the request gets 500 internal_error and whatever the script does later is ignored. A
// synchronous run cannot be cut off from the outside (JavaScript has one thread per process):
// it is measured when it returns, and one that took longer than its budget fails the request
// the same way, but every request of that process waited meanwhile. With `interruptible`, the
// synchronous part (up to the first await) runs under node:vm's watchdog instead, which stops
// it at the budget; that costs about 1.5 µs a request (docs/scripts.md).
import vm from 'node:vm'
import { unwatchDeadline, watchDeadline, type Timed } from '../runtime/client/deadlines.ts'
import type { AccessFn, AccessLogEntry, BodyStep, LogFn, RequestContext, RewriteFn } from '../runtime/context.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import { failure } from '../log/events.ts'
import { StoreUnavailable } from '../store/store.ts'
import { BaseContext, LogScriptContext, StageContext, type ScriptSite } from './context.ts'
import { ResponseScriptContext } from './response.ts'
import { RewriteScriptContext } from './upstream.ts'
import { ScriptAnswer, ScriptRefusal, type Verdict } from './verdicts.ts'

export type ScriptFn = (ctx: never) => unknown

// What a run came to: nothing (go on), a verdict, or the gateway error that ends the request.
type Outcome = undefined | Verdict | GatewayError

const what = (site: ScriptSite) => `the route's ${site.stage} script`

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (v instanceof Response) return 'a Response'
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`
}

function report(site: ScriptSite, ctx: RequestContext, message: string): void {
  failure('script', `${site.stage} script ${site.script} on ${site.route} (request ${ctx.id}): ${message}`, {
    route: site.route,
    script: site.script,
    request_id: ctx.id,
  })
}

// A throw: the script's own error (logged with its stack, never shown to the client), a
// verdict thrown instead of returned, or an error of the gateway's own the API raised.
function thrown(err: unknown, site: ScriptSite, ctx: RequestContext): Outcome {
  if (err instanceof ScriptRefusal || err instanceof ScriptAnswer) return err
  if (err instanceof GatewayError) return err
  if (err instanceof StoreUnavailable) {
    report(site, ctx, `the store did not answer: ${err.message}`)
    return new GatewayError('store_unavailable', `the store did not answer ${what(site)}`)
  }
  report(site, ctx, `threw ${(err as Error)?.stack ?? String(err)}`)
  return new GatewayError('internal_error', `${what(site)} failed`)
}

function returned(v: unknown, site: ScriptSite, ctx: RequestContext): Outcome {
  if (v === undefined || v instanceof ScriptRefusal || v instanceof ScriptAnswer) return v
  report(site, ctx, `returned ${describe(v)}; a script returns nothing, ctx.refuse(…) or ctx.respond(…)`)
  return new GatewayError('internal_error', `${what(site)} failed`)
}

function overBudget(site: ScriptSite, ctx: RequestContext, ms: number, sync: boolean | 'interrupted'): GatewayError {
  const how =
    sync === 'interrupted'
      ? `was interrupted after ${Math.round(ms)} ms of synchronous work`
      : sync
        ? `ran synchronously for ${Math.round(ms)} ms, blocking every request of this process meanwhile`
        : 'was cut off'
  report(site, ctx, `${how}: its budget is ${site.budgetMs} ms (\`timeout\`)`)
  return new GatewayError('internal_error', `${what(site)} did not finish within its ${site.budgetMs} ms budget`)
}

// One context for every interruptible call: a call sets its function and argument, runs the
// trampoline with the watchdog's time limit, and clears them (calls never nest).
let sandbox: { f: unknown; a: unknown } | null = null
let sandboxContext: vm.Context
const trampoline = new vm.Script('f(a)', { filename: 'portcullis-script-call' })
const INTERRUPTED = 'ERR_SCRIPT_EXECUTION_TIMEOUT'

function interruptibly(fn: ScriptFn, c: BaseContext, ms: number): unknown {
  if (sandbox === null) sandboxContext = vm.createContext((sandbox = { f: null, a: null }))
  sandbox.f = fn
  sandbox.a = c
  try {
    return trampoline.runInContext(sandboxContext, { timeout: Math.max(1, Math.ceil(ms)) })
  } finally {
    sandbox.f = sandbox.a = null
  }
}

// Runs the script; `close` is called once it settled or ran out of time.
function run(fn: ScriptFn, c: BaseContext, site: ScriptSite, ctx: RequestContext, close?: () => void): Outcome | Promise<Outcome> {
  const t0 = performance.now()
  let r: unknown
  try {
    r = site.interruptible ? interruptibly(fn, c, site.budgetMs) : fn(c as never)
  } catch (err) {
    close?.()
    if (site.interruptible && (err as { code?: string })?.code === INTERRUPTED) return overBudget(site, ctx, performance.now() - t0, 'interrupted')
    return overran(t0, site, ctx) ?? thrown(err, site, ctx)
  }
  if (r === undefined) {
    if (close) close()
    return overran(t0, site, ctx)
  }
  if (!(r instanceof Promise)) {
    close?.()
    return overran(t0, site, ctx) ?? returned(r, site, ctx)
  }
  const late = overran(t0, site, ctx)
  if (late) {
    close?.()
    r.catch(() => {})
    return late
  }
  return new Promise<Outcome>((resolve) => {
    let settled = false
    const settle = (o: Outcome) => {
      if (settled) return
      settled = true
      unwatchDeadline(watched)
      close?.()
      resolve(o)
    }
    const watched: Timed = {
      deadline: t0 + site.budgetMs,
      deadlineSlot: -1,
      expire: () => settle(overBudget(site, ctx, performance.now() - t0, false)),
    }
    watchDeadline(watched)
    r.then(
      (v) => settle(returned(v, site, ctx)),
      (err) => settle(thrown(err, site, ctx)),
    )
  })
}

function overran(t0: number, site: ScriptSite, ctx: RequestContext): GatewayError | undefined {
  const ms = performance.now() - t0
  return ms > site.budgetMs ? overBudget(site, ctx, ms, true) : undefined
}

// The access and rewrite stages: a refusal is its gateway error; an answer ends the request
// (thrown as a Response: runtime/handle.ts gives it to the client, header steps included).
function ending(o: Outcome, ctx: RequestContext): GatewayError | undefined {
  if (o === undefined || o instanceof GatewayError) return o
  if (o instanceof ScriptRefusal) return o.error
  throw o.toResponse(ctx.id, ctx.method)
}

export function accessStep(fn: ScriptFn, site: ScriptSite): AccessFn {
  return function scriptAccess(ctx) {
    const o = run(fn, new StageContext(ctx, site), site, ctx)
    return o instanceof Promise ? o.then((x) => ending(x, ctx)) : ending(o, ctx)
  }
}

export function rewriteStep(fn: ScriptFn, site: ScriptSite): RewriteFn {
  return function scriptRewrite(ctx) {
    const c = new RewriteScriptContext(ctx, site)
    const o = run(fn, c, site, ctx, () => RewriteScriptContext.close(c))
    return o instanceof Promise ? o.then((x) => ending(x, ctx)) : ending(o, ctx)
  }
}

export function responseStep(fn: ScriptFn, site: ScriptSite, cap: number): BodyStep {
  async function settle(o: Outcome, c: ResponseScriptContext, ctx: RequestContext): Promise<Response> {
    if (o === undefined) return ResponseScriptContext.finish(c)
    await ResponseScriptContext.drop(c)
    if (o instanceof GatewayError) throw o
    if (o instanceof ScriptRefusal) throw o.error
    ctx.bodyPending = false
    const res = o.toResponse(ctx.id, ctx.method)
    ctx.bytesOut = ctx.method === 'HEAD' || o.body === null ? 0 : o.body.byteLength
    return res
  }
  return {
    run: function scriptResponse(ctx, res) {
      const c = new ResponseScriptContext(ctx, site, res, cap)
      const o = run(fn, c, site, ctx)
      return o instanceof Promise ? o.then((x) => settle(x, c, ctx)) : settle(o, c, ctx)
    },
  }
}

// The log stage: the answer is gone; a failure is only reported. Entry fields count when the
// script adds them before its first await (the line is written when this returns).
export function logStep(fn: ScriptFn, site: ScriptSite): LogFn {
  return function scriptLog(ctx: RequestContext, entry: AccessLogEntry) {
    const c = new LogScriptContext(ctx, site, entry)
    void run(fn, c, site, ctx, () => LogScriptContext.close(c))
    LogScriptContext.close(c)
  }
}
