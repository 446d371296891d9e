// The checks of a route's `when` guards: references, conditions that can never match
// (against the route's methods and typed captures, or contradicting each other), identity read
// before it exists, and terminals in `when` blocks that can never run or leave requests without.
import type { Binding } from '../directives/define.ts'
import { didYouMean, type DiagnosticBag } from '../policy/diagnostics.ts'
import { checkReference, type RouteInfo } from '../policy/references.ts'
import { suggestionNote } from '../policy/template.ts'
import type { PatternSegment } from '../runtime/router.ts'
import type { DirectiveUse } from './check-program.ts'
import { bindsOf, type Condition, type Guard, type Test } from './conditions.ts'

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT']
// Always there when a route runs: `absent` can never match them.
const ALWAYS_PRESENT = /^(param\.|request\.(ip|id|method|path|host|scheme)$)|^[A-Za-z_][A-Za-z0-9_]*$/

// What the checks of a route's guards need to know about the route.
export interface GuardRoute {
  methods: readonly string[] | null
  segments: readonly PatternSegment[]
  info: RouteInfo
}

const IDENTITY: Record<string, Binding> = { app: 'app', jwt: 'jwt', user: 'user' }

// Checks every guard of a route; reports a guarded terminal that can never run, and a route
// whose requests that match no `when` have no terminal. `fallback` is the route's unguarded
// terminal (true: it has one that failed to read, or it always ends in its access stage).
// Returns true when the route's terminals are in `when` blocks: then the missing terminal,
// if any, is reported here.
export function checkGuards(uses: readonly DirectiveUse[], route: GuardRoute, fallback: DirectiveUse | boolean, bag: DiagnosticBag): boolean {
  const seen = new Set<Condition>()
  uses.forEach((u, i) => {
    if (u.guard) nestedContradictions(u.guard, bag)
    for (const c of u.guard?.conditions ?? []) {
      if (!seen.has(c)) {
        seen.add(c)
        checkCondition(c, route, u.fromDefaults, bag)
      }
      if (u.def.stage !== 'access') continue
      // In the access stage only the directives before this one have identified the caller.
      for (const t of c.tests) {
        const b = IDENTITY[t.ref.split('.')[0]!]
        if (!b || !route.info.binds.has(b)) continue
        if (uses.slice(0, i).some((p) => p.def.stage === 'access' && bindsOf(p.def, p.cfg).includes(b))) continue
        bag.error(
          'guard-before-identity',
          `'${t.ref}' is not known yet when '${u.def.name}' runs: the caller is identified later in the access stage`,
          t.refSpan,
          {
            message: `'${u.def.name}' is here; put it after the require line that identifies the ${b}`,
            span: u.span,
          },
        )
      }
    }
  })
  const guarded = uses.filter((u) => u.guard && u.def.terminal)
  const tried: DirectiveUse[] = []
  const methods = new Set<string>()
  for (const t of guarded) {
    // An earlier guarded terminal whose conditions all hold whenever this one's do answers first.
    const mine = new Set(t.guard!.conditions.map((c) => c.text))
    const prev = tried.find((p) => p.guard!.conditions.every((c) => mine.has(c.text)))
    if (prev) {
      const same =
        prev.guard!.conditions.length === t.guard!.conditions.length && prev.guard!.conditions.every((c, i) => c === t.guard!.conditions[i])
      bag.error(
        same ? 'multiple-terminals' : 'unreachable-terminal',
        same
          ? `a 'when' block has one terminal directive; '${t.def.name}' follows '${prev.def.name}'`
          : `'${t.def.name}' can never run: an earlier 'when' answers every request that meets its condition`,
        t.span,
        { message: same ? 'first terminal here' : 'it is answered here', span: prev.span },
      )
      continue
    }
    tried.push(t)
    const only = t.guard!.conditions.length === 1 ? t.guard!.conditions[0]! : undefined
    if (only && only.tests.length === 1 && only.tests[0]!.ref === 'request.method' && only.tests[0]!.op === 'eq')
      for (const v of only.tests[0]!.values) methods.add(v.text)
  }
  const covered = route.methods !== null && route.methods.every((m) => methods.has(m))
  if (covered && typeof fallback === 'object')
    bag.error('unreachable-terminal', `'${fallback.def.name}' can never run: the 'when' blocks answer every method of this route`, fallback.span)
  if (!covered && !fallback && guarded.length > 0)
    bag.error(
      'missing-terminal',
      `the route ${route.info.label} has no terminal for requests that match no 'when': add proxy or respond outside the 'when' blocks`,
      guarded[0]!.guard!.conditions[0]!.span,
    )
  return covered || guarded.length > 0
}

function never(bag: DiagnosticBag, t: Test, why: string): void {
  bag.error('never-matches', `this condition can never match: ${why}`, t.span)
}

// Route-independent checks always; those that depend on the route (its methods, its typed
// captures) only for the route's own `when` blocks, not for those of `defaults`.
function checkCondition(c: Condition, route: GuardRoute, fromDefaults: boolean, bag: DiagnosticBag): void {
  for (const t of c.tests) {
    const problem = checkReference(t.ref, route.info)
    if (problem) {
      bag.error('unknown-reference', problem.message, t.refSpan, ...suggestionNote(problem.suggestion))
      continue
    }
    if ((t.op === 'in' || t.op === 'not-in') && t.ref !== 'request.ip') {
      bag.error('bad-condition', `'${t.op === 'in' ? 'in' : 'not in'}' compares an IP address with CIDR ranges: use it with request.ip`, t.refSpan)
      continue
    }
    if (t.op === 'absent' && ALWAYS_PRESENT.test(t.ref)) never(bag, t, `'${t.ref}' is always there`)
    if (t.ref === 'request.method' && (t.op === 'eq' || t.op === 'ne')) {
      let known = true
      for (const v of t.values) {
        if (METHODS.includes(v.text)) continue
        known = false
        const near = METHODS.includes(v.text.toUpperCase()) ? v.text.toUpperCase() : didYouMean(v.text.toUpperCase(), METHODS)
        bag.error(
          'never-matches',
          `'${v.text}' is not an HTTP method (methods are upper case)`,
          v.span,
          ...(near ? [{ message: `did you mean '${near}'?` }] : []),
        )
      }
      if (known && !fromDefaults && route.methods !== null) {
        const listed = new Set(t.values.map((v) => v.text))
        if (t.op === 'eq' && !route.methods.some((m) => listed.has(m)))
          never(bag, t, `the route ${route.info.label} only takes ${route.methods.join(', ')}`)
        if (t.op === 'ne' && route.methods.every((m) => listed.has(m)))
          never(bag, t, `the route ${route.info.label} only takes ${route.methods.join(', ')}`)
      }
    }
    if (t.ref === 'request.scheme' && t.op === 'eq' && t.values.every((v) => v.text !== 'http' && v.text !== 'https'))
      never(bag, t, "request.scheme is 'http' or 'https'")
    if (!fromDefaults && t.op === 'eq' && t.ref.startsWith('param.')) {
      const seg = route.segments.find((s) => s.kind === 'typed' && s.name === t.ref.slice(6))
      if (seg?.kind === 'typed' && t.values.every((v) => !seg.test(v.text)))
        never(
          bag,
          t,
          `the capture '${seg.name}' is typed ${seg.type} and ${t.values.length > 1 ? 'none of these values is' : `"${t.values[0]!.text}" is not`} one`,
        )
    }
  }
  if (c.join === 'and') contradictions(c.tests, bag)
}

// Two tests of one `and` on the same reference that no value can pass together.
function contradictions(tests: readonly Test[], bag: DiagnosticBag, outer: readonly Test[] = []): void {
  tests.forEach((t, i) => {
    for (const earlier of [...outer, ...tests.slice(0, i)]) {
      if (refKey(earlier.ref) !== refKey(t.ref)) continue
      const why = clash(earlier, t)
      if (why) {
        bag.error('never-matches', `this condition can never match: ${why}`, t.span, { message: 'it contradicts this test', span: earlier.span })
        return
      }
    }
  })
}

// A `when` inside another: its tests must hold together with those of the blocks around it.
function nestedContradictions(g: Guard, bag: DiagnosticBag): void {
  const all = (c: Condition) => (c.join === 'and' || c.tests.length === 1 ? c.tests : [])
  for (let i = 1; i < g.conditions.length; i++) {
    const outer = g.conditions.slice(0, i).flatMap(all)
    if (outer.length > 0) contradictions(all(g.conditions[i]!), bag, outer)
  }
}

// Header names compare case-insensitively; every other reference as written.
const refKey = (ref: string) => (ref.startsWith('request.header.') ? ref.toLowerCase() : ref)

function clash(a: Test, b: Test): string | undefined {
  const ops = new Set([a.op, b.op])
  const set = (t: Test) => new Set(t.values.map((v) => v.text))
  if (ops.has('absent') && (ops.has('present') || ops.has('eq') || ops.has('in') || ops.has('matches')))
    return `'${a.ref}' cannot be absent and have a value`
  if (a.op === 'eq' && b.op === 'eq' && ![...set(a)].some((v) => set(b).has(v))) return `'${a.ref}' cannot equal both`
  const eq = a.op === 'eq' ? a : b.op === 'eq' ? b : undefined
  const ne = a.op === 'ne' ? a : b.op === 'ne' ? b : undefined
  if (eq && ne && [...set(eq)].every((v) => set(ne).has(v))) return `'${a.ref}' cannot both equal and differ from the same value`
  return undefined
}
