// `when` guards at compile time: each condition becomes one closure over precomputed values
// (sets, CIDR matchers, regular expressions); a guarded step runs only when it holds, and a
// route's terminals are tried in order: the guarded ones (source order), then the route's own.
import type { Condition, Guard, Test } from '../check/conditions.ts'
import type { CompileContext } from '../directives/define.ts'
import { compileReference } from '../policy/references.ts'
import type { BodyStep, RequestContext, TerminalFn } from '../runtime/context.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import { ipMatcher } from '../runtime/ip.ts'

type Check = (ctx: RequestContext) => boolean

// A missing value (an absent header, no identified app) fails `=`, `in`, `matches` and
// `present`; `!=`, `not in` and `absent` are their exact negations.
function compileTest(t: Test): Check {
  const get = compileReference(t.ref, 'text')
  switch (t.op) {
    case 'present':
      return (ctx) => get(ctx) !== undefined
    case 'absent':
      return (ctx) => get(ctx) === undefined
    case 'in':
    case 'not-in': {
      const inside = ipMatcher(t.cidrs)
      const want = t.op === 'in'
      return (ctx) => {
        const v = get(ctx)
        return (v !== undefined && inside(v)) === want
      }
    }
    case 'matches': {
      const re = new RegExp(t.values[0]!.text)
      return (ctx) => {
        const v = get(ctx)
        return v !== undefined && re.test(v)
      }
    }
    case 'eq':
    case 'ne': {
      const want = t.op === 'eq'
      if (t.values.length === 1) {
        const only = t.values[0]!.text
        return (ctx) => (get(ctx) === only) === want
      }
      const set = new Set(t.values.map((v) => v.text))
      return (ctx) => {
        const v = get(ctx)
        return (v !== undefined && set.has(v)) === want
      }
    }
  }
}

function compileCondition(c: Condition): Check {
  const tests = c.tests.map(compileTest)
  if (tests.length === 1) return tests[0]!
  if (c.join === 'and')
    return (ctx) => {
      for (const t of tests) if (!t(ctx)) return false
      return true
    }
  return (ctx) => {
    for (const t of tests) if (t(ctx)) return true
    return false
  }
}

// The directives of one `when` block share their compiled conditions.
const compiled = new WeakMap<Condition, Check>()

export function compileGuard(g: Guard): Check {
  const checks = g.conditions.map((c) => {
    let check = compiled.get(c)
    if (!check) compiled.set(c, (check = compileCondition(c)))
    return check
  })
  if (checks.length === 1) return checks[0]!
  return (ctx) => {
    for (const c of checks) if (!c(ctx)) return false
    return true
  }
}

// The compile context of a guarded use: steps it would register for the whole route (run
// after the access stage, on every answer, for preflights) would escape the guard, so the
// checker refuses such directives in a `when`, and this keeps a new one from slipping by.
export function guardedContext(ctx: CompileContext, name: string): CompileContext {
  const refuse = () => {
    throw new Error(`'${name}' registers route-wide steps: it cannot be inside a 'when' (src/check/conditions.ts must refuse it)`)
  }
  return { ...ctx, afterAccess: refuse, onEarlyAnswer: refuse, everyAnswer: refuse, preflight: refuse, tracing: refuse }
}

interface GuardedTerminal {
  guarded: Check
  terminal: TerminalFn
}

// A stage step that runs only when the guard holds (a guarded terminal is chosen by `terminalOf`).
export function guardStep(fn: unknown, guard: Guard, terminal = false): unknown {
  const holds = compileGuard(guard)
  if (terminal) return { guarded: holds, terminal: fn as TerminalFn } satisfies GuardedTerminal
  if (typeof fn !== 'function') {
    const step = fn as BodyStep
    const before = step.before
    return {
      run: (ctx, res) => (holds(ctx) ? step.run(ctx, res) : res),
      ...(before ? { before: (ctx) => (holds(ctx) ? before.call(step, ctx) : null) } : {}),
    } satisfies BodyStep
  }
  const f = fn as (ctx: RequestContext, ...rest: never[]) => unknown
  return function guarded(ctx: RequestContext, ...rest: never[]) {
    return holds(ctx) ? f(ctx, ...rest) : undefined
  }
}

// How the route table names a guarded use.
export function guardedName(name: string, guard: Guard | undefined): string {
  return guard ? `${name} (when ${guard.text})` : name
}

// The route's terminal: the first guarded one whose guard holds, else the route's own. `names`
// (the route table's) is put in the same order.
export function terminalOf(steps: unknown[], names: string[]): TerminalFn | undefined {
  const isGuarded = (s: unknown) => typeof s === 'object' && s !== null && 'guarded' in s
  const guarded = steps.filter(isGuarded) as GuardedTerminal[]
  const own = steps.find((s) => !isGuarded(s)) as TerminalFn | undefined
  if (guarded.length === 0) return own
  if (names.length !== steps.length) throw new Error('a terminal compiled to nothing')
  const order = steps.map((s, i) => [isGuarded(s), i] as const).sort((a, b) => Number(b[0]) - Number(a[0]) || a[1] - b[1])
  names.splice(0, names.length, ...order.map(([, i]) => names[i]!))
  return function chooseTerminal(ctx) {
    for (const g of guarded) if (g.guarded(ctx)) return g.terminal(ctx)
    if (own) return own(ctx)
    // Without a terminal of its own, the guarded ones cover every method of the route (checked).
    throw new GatewayError('internal_error', 'no terminal of the route answers this request')
  }
}
