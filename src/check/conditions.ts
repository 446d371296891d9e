// `when CONDITION { … }` blocks: reading the condition and resolving the directives inside,
// each carrying the guard. What a condition is checked for: src/check/guards.ts.
import type { AnyDirective, Binding, Place } from '../directives/define.ts'
import type { Statement } from '../policy/ast.ts'
import { ArgCursor } from '../policy/cursor.ts'
import type { DiagnosticBag } from '../policy/diagnostics.ts'
import { joinSpans, type Span } from '../policy/source.ts'
import { unquote } from '../policy/ast.ts'
import type { Cidr } from '../runtime/ip.ts'
import type { DirectiveUse } from './check-program.ts'

export type TestOp = 'eq' | 'ne' | 'present' | 'absent' | 'in' | 'not-in' | 'matches'

export interface Test {
  ref: string
  refSpan: Span
  op: TestOp
  values: { text: string; span: Span }[] // eq, ne: the alternatives; matches: the pattern
  cidrs: Cidr[] // in, not-in
  span: Span
}

export interface Condition {
  join: 'and' | 'or'
  tests: Test[]
  text: string // as written (one space between words), for the route table and messages
  span: Span // the `when` word
}

// The conditions of the `when` blocks around a directive, outermost first: all must hold.
export interface Guard {
  conditions: readonly Condition[]
  text: string
}

export const WHEN = 'when'
const USAGE = 'when REFERENCE = "v"[, "v"…] | != "v"… | present | absent | in CIDR[, …] | not in CIDR… | matches "regex" [and|or …] { … }'
// Directives that register route-wide steps instead of running at their place, so a
// condition cannot guard them (the compiler refuses such a registration from a guarded use).
const LIMITS = "the route's limits are decided together, once, after its access stage"
const ROUTE_WIDE = new Map([
  ['throttle', LIMITS],
  ['quota', LIMITS],
  ['on store-failure', LIMITS],
  ['cors', "it answers the route's preflights and marks every answer, before any condition could be read"],
  ['trace', 'whether a request is traced is decided as it arrives, before any condition could be read'],
])

function conditionText(words: Statement['words']): string {
  return words
    .map((w) => w.text)
    .join(' ')
    .replaceAll(' ,', ',')
}

function readTest(a: ArgCursor): Test | undefined {
  const ref = a.expect(['word'], 'a reference like request.header.X-Env, param.id or app.name')
  if (!ref) return undefined
  const op = a.peek()
  const values: Test['values'] = []
  const cidrs: Cidr[] = []
  const value = () => {
    const v = a.expect(['string', 'number'], 'a "value" (quoted; a number may be bare)')
    if (v) values.push({ text: v.kind === 'string' ? unquote(v.text) : v.text, span: v.span })
    return v
  }
  let kind: TestOp
  if (op?.kind === 'equals' || op?.kind === 'not-equals') {
    a.expect([op.kind], '')
    kind = op.kind === 'equals' ? 'eq' : 'ne'
    if (!a.list(value)) return undefined
  } else if (a.accept('present')) kind = 'present'
  else if (a.accept('absent')) kind = 'absent'
  else if (a.accept('in') || (a.peek(1)?.text === 'in' && a.accept('not') && a.accept('in'))) {
    kind = a.peek(-2)?.text === 'not' ? 'not-in' : 'in'
    const list = a.list(() => a.cidr())
    if (!list) return undefined
    cidrs.push(...list)
  } else if (a.accept('matches')) {
    kind = 'matches'
    const s = a.string('a "regular expression"')
    if (!s) return undefined
    try {
      new RegExp(s.value)
    } catch (e) {
      return a.fail(
        'bad-regex',
        `invalid regular expression "${s.value}": ${(e as Error).message.replace(/^Invalid regular expression: /, '')}`,
        s.arg.span,
      )
    }
    values.push({ text: s.value, span: s.arg.span })
  } else {
    return a.fail(
      op ? 'bad-argument' : 'missing-argument',
      `'when' expects a comparison after '${ref.text}': = "value", != "value", present, absent, in CIDR or matches "regex"${op ? `, found '${op.text}'` : ''}`,
      op?.span,
    )
  }
  const last = a.peek(-1)!
  return { ref: ref.text, refSpan: ref.span, op: kind, values, cidrs, span: joinSpans(ref.span, last.span) }
}

function readCondition(st: Statement, bag: DiagnosticBag): Condition | undefined {
  const a = new ArgCursor(st, bag, USAGE, WHEN, 1)
  if (a.done()) return a.fail('missing-argument', '\'when\' expects a condition, like: when request.header.X-Env = "beta" { … }')
  const tests: Test[] = []
  let join: Condition['join'] | undefined
  for (;;) {
    const t = readTest(a)
    if (!t) return undefined
    tests.push(t)
    if (a.done()) break
    const next = a.peek()!
    if (next.kind === 'word' && (next.text === 'and' || next.text === 'or')) {
      if (join && join !== next.text)
        return a.fail('mixed-condition', "a condition joins its tests with 'and' or with 'or', not both: nest one `when` inside another", next.span)
      join = next.text
      a.accept(next.text)
      if (a.done()) return a.fail('missing-argument', `'when' expects another test after '${next.text}'`)
      continue
    }
    return a.fail('bad-argument', `'when' expects 'and', 'or' or the '{' of its block, found '${next.text}'`, next.span)
  }
  return { join: join ?? 'and', tests, text: conditionText(st.words.slice(1)), span: st.words[0]!.span }
}

type Resolve = (st: Statement, place: Place, bag: DiagnosticBag) => DirectiveUse | DirectiveUse[] | undefined

// A `when` statement → the uses inside it, each guarded by its condition (and the conditions
// of the `when` blocks around it).
export function resolveWhen(st: Statement, place: Place, bag: DiagnosticBag, resolve: Resolve): DirectiveUse[] {
  const condition = readCondition(st, bag)
  if (st.block === undefined) {
    bag.error('syntax', "'when' needs a block: when CONDITION { directives }", st.span)
    return []
  }
  if (st.block.length === 0) bag.error('empty-when', "this 'when' block is empty: it does nothing", st.span)
  const uses = st.block.flatMap((inner) => resolve(inner, place, bag) ?? [])
  if (!condition) return []
  const out: DirectiveUse[] = []
  for (const u of uses) {
    const refused = unguardable(u.def)
    if (refused) {
      bag.error('unguardable', `'${u.def.name}' cannot be inside a 'when': ${refused}`, u.span, {
        message: "the 'when' is here",
        span: st.words[0]!.span,
      })
      continue
    }
    const conditions = [condition, ...(u.guard?.conditions ?? [])]
    // Nested: `A and (B or C)`.
    const text = conditions.map((c) => (conditions.length > 1 && c.join === 'or' && c.tests.length > 1 ? `(${c.text})` : c.text)).join(' and ')
    out.push({ ...u, guard: { conditions, text } })
  }
  return out
}

export function bindsOf(def: AnyDirective, cfg: unknown): readonly Binding[] {
  return typeof def.binds === 'function' ? def.binds(cfg) : (def.binds ?? [])
}

function unguardable(def: AnyDirective): string | undefined {
  if (def.binds) return 'who the caller is cannot depend on a condition (use `require A or B` to accept either)'
  return ROUTE_WIDE.get(def.name)
}
