// Throttles and quotas of one route, decided together: one atomic store call per request for
// every `throttle` and `quota` line the route (with its defaults) has. A request refused by
// one limit is counted by none. The decision runs after every other access directive of the
// route, so the caller is identified, wherever the lines stand (in `defaults` too).
import type { RequestContext } from './context.ts'
import { GatewayError } from './gateway-error.ts'
import { sha256 } from './identity.ts'
import type { LimitDecision, LimitRule, Store } from '../store/store.ts'
import { failure } from '../log/events.ts'

export type Calendar = 'hour' | 'day' | 'month'
export type KeyPart = { kind: 'app' | 'ip' | 'route' | 'user' } | { kind: 'header'; name: string } | { kind: 'jwt'; claim: string }

export interface LimitSpec {
  source: 'throttle' | 'quota'
  rate: { limit: number; windowMs: number } | 'tier' // 'tier': the identified app's tier
  burst: number // at most this many of the limit in any limit·burst/N of the window (0: no such cap)
  calendar: Calendar | null // quotas: UTC calendar windows
  key: readonly KeyPart[]
  keyText: string // as declared: part of the counter key
}

export interface TierRate {
  limit: number
  windowMs: number
  burst: number
}

export type FailurePolicy = 'allow' | 'deny'

// What the access log and metrics learn of the decision.
export interface LimitOutcome {
  result: 'admitted' | 'refused' | 'store_failure_allowed' | 'store_failure_denied'
  tier: string | null
}

const hex = (s: string) => Buffer.from(sha256(s)).toString('hex').slice(0, 32)

// Key values repeat (an app, an address): each is hashed once, a bounded number of them. A
// long value (a client can send kilobytes in a header) is hashed every time, never kept:
// thousands of them would hold megabytes.
const MAX_KEPT_VALUE = 256
const hashed = new Map<string, string>()
function hashOf(v: string): string {
  if (v.length > MAX_KEPT_VALUE) return hex(v)
  let h = hashed.get(v)
  if (h === undefined) {
    h = hex(v)
    if (hashed.size >= 16_384) hashed.clear()
    hashed.set(v, h)
  }
  return h
}

function calendarEnd(now: number, c: Calendar): number {
  const d = new Date(now)
  if (c === 'hour') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours() + 1)
  if (c === 'day') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)
}

// RateLimit-Policy's window of a calendar quota (a month: 31 days).
const CALENDAR_S: Record<Calendar, number> = { hour: 3_600, day: 86_400, month: 2_678_400 }

// The value a key part takes for a request. An unidentified caller on a `per app` or `per
// user` limit is counted by its address, so leaving out credentials never escapes a limit.
function partValue(ctx: RequestContext, p: KeyPart): string {
  switch (p.kind) {
    case 'app':
      return ctx.identity?.app ? `a:${ctx.identity.app.name}` : `i:${ctx.ip}`
    case 'user':
      return ctx.identity?.user ? `u:${ctx.identity.user.id}` : `i:${ctx.ip}`
    case 'ip':
      return ctx.ip
    case 'route':
      return ''
    // An absent header or claim is its own key, apart from an empty one; a claim's type counts
    // (the number 7 and the string "7" are two keys).
    case 'header': {
      const v = ctx.req.headers.get(p.name)
      return v === null ? '-' : `h:${v}`
    }
    case 'jwt': {
      const v = ctx.identity?.jwt?.[p.claim]
      return v === undefined ? '-' : typeof v === 'string' ? `s:${v}` : `j:${JSON.stringify(v)}`
    }
  }
}

// A key part's value as a cache key of its own shape (the request's strings as they are, so
// nothing is joined on the way): an app's name (names hold no line feed), or a line feed and
// the address for an unidentified caller; an address; a header's value, or a line feed when it
// is absent (no header value holds one). One-to-one with partValue for a given part.
function rawValue(ctx: RequestContext, p: KeyPart): string {
  if (p.kind === 'header') return ctx.req.headers.get(p.name) ?? '\n'
  if (p.kind === 'app') return ctx.identity?.app ? ctx.identity.app.name : `\n${ctx.ip}`
  return p.kind === 'ip' ? ctx.ip : partValue(ctx, p)
}

// One limit a request meets, less what depends on the request: its counter key up to the
// hash of the key value, and what the RateLimit headers say of it.
interface RuleShape {
  spec: number // index in specs: rules of one spec share its key value
  head: string
  limit: number
  windowMs: number // sliding; 0 for a calendar rule
  calendar: Calendar | null
  name: string // RateLimit-Policy name
  limitText: string // RateLimit-Limit
}

// The rules of every request of one tier (null: no tier applies), made once per tier.
interface Shape {
  rules: RuleShape[]
  tier: string | null
  policy: string // RateLimit-Policy
  // Sliding windows only (no calendar rule, whose end moves): a request's rules by its key
  // values, made once per value and shared by its requests (the stores only read them).
  byValue: Map<string, readonly LimitRule[]> | null
  // When every rule has one spec whose key is one part (app, ip or a header): that part, whose
  // value as the request holds it is the cache key (no string to join; see rawValue).
  single: KeyPart | null
}

// Key values kept per shape (none longer than MAX_KEPT_VALUE): past this many the map starts afresh.
const MAX_CACHED_VALUES = 4096

interface Applied {
  rules: readonly LimitRule[]
  shape: Shape
}

export class LimitGroup {
  private readonly specs: LimitSpec[] = []
  private policy: FailurePolicy | null = null
  private readonly tag: string
  private lastFailureLog = 0
  private readonly shapes = new Map<string | null, Shape>()
  private tiered = false

  constructor(
    private readonly routeId: string,
    private readonly store: Store,
    private readonly tiers: ReadonlyMap<string, TierRate | 'unlimited'>,
    private readonly now: () => number,
  ) {
    // One hash slot for every key of the route (Redis Cluster runs a decision on one node).
    this.tag = hex(routeId).slice(0, 16)
  }

  add(spec: LimitSpec): void {
    this.specs.push(spec)
    if (spec.rate === 'tier') this.tiered = true
    this.shapes.clear()
  }

  onFailure(p: FailurePolicy): void {
    this.policy = p
  }

  // The rules of `tier` (a tier with a rate, or null): specs with a rate of their own, and
  // `throttle tier` ones when the tier has a rate (no tier, or an unlimited one, is not limited).
  private shapeOf(tier: string | null): Shape {
    let shape = this.shapes.get(tier)
    if (shape !== undefined) return shape
    const rules: RuleShape[] = []
    const windows: number[] = []
    const push = (spec: number, window: string, name: string, limit: number, windowMs: number, calendar: Calendar | null, w: number) => {
      const s = this.specs[spec]!
      // A sliding window is a log (a Redis list), a calendar one a counter: `throttle-log` names
      // the log's keys apart from those of its earlier form (a sorted set under `throttle`).
      const kind = calendar === null ? 'throttle-log' : s.source
      rules.push({ spec, head: `rl:{${this.tag}}:${kind}:${s.keyText}:${window}:`, limit, windowMs, calendar, name, limitText: String(limit) })
      windows.push(w)
    }
    this.specs.forEach((spec, i) => {
      let rate: TierRate
      let name: string = spec.source
      if (spec.rate === 'tier') {
        const t = tier === null ? undefined : this.tiers.get(tier)
        if (t === undefined || t === 'unlimited') return
        rate = t
        name = tier!
      } else rate = { ...spec.rate, burst: spec.burst }
      if (spec.calendar) return push(i, spec.calendar, name, rate.limit, 0, spec.calendar, CALENDAR_S[spec.calendar])
      push(i, String(rate.windowMs), name, rate.limit, rate.windowMs, null, Math.ceil(rate.windowMs / 1000))
      if (rate.burst > 0 && rate.burst < rate.limit) {
        const windowMs = Math.max(1, Math.round((rate.windowMs * rate.burst) / rate.limit))
        push(i, `${windowMs}b`, `${name}-burst`, rate.burst, windowMs, null, Math.ceil(windowMs / 1000))
      }
    })
    // RateLimit-Policy is the same for every request of the tier.
    const policy = rules.map((r, i) => `"${r.name}";q=${r.limit};w=${windows[i]}`).join(', ')
    const tiered = rules.some((r) => this.specs[r.spec]!.rate === 'tier') ? tier : null
    const specs = new Set(rules.map((r) => r.spec))
    const only = specs.size === 1 ? this.specs[rules[0]!.spec]!.key : []
    const single = only.length === 1 && (only[0]!.kind === 'app' || only[0]!.kind === 'ip' || only[0]!.kind === 'header') ? only[0]! : null
    shape = { rules, tier: tiered, policy, byValue: rules.every((r) => r.calendar === null) ? new Map() : null, single }
    this.shapes.set(tier, shape)
    return shape
  }

  // The request's key value for `spec`: each part ended by a NUL. A part that holds a NUL
  // itself (a claim can) is written as `~` and its JSON, which has none: the parts of a value
  // never run into each other, and no other part starts with `~`.
  private value(spec: LimitSpec, ctx: RequestContext): string {
    const parts = spec.key
    let v = ''
    for (let i = 0; i < parts.length; i++) {
      const p = partValue(ctx, parts[i]!)
      v += p.includes('\u0000') ? `~${JSON.stringify(p)}\u0000` : `${p}\u0000`
    }
    return v
  }

  private rulesFor(ctx: RequestContext, now: number): Applied {
    let tier: string | null = null
    if (this.tiered) {
      tier = ctx.identity?.app?.tier ?? null
      // A tier without a rate of its own limits nothing: the same rules as no tier.
      if (tier !== null && typeof this.tiers.get(tier) !== 'object') tier = null
    }
    const shape = this.shapeOf(tier)
    const cache = shape.byValue
    if (cache === null) return { rules: this.makeRules(shape, ctx, now), shape }
    // The values of every spec the shape's rules use, in rule order (a spec's rules are
    // adjacent). Each spec has a known number of parts, each ended by its only NUL: one string
    // of them names one set of values. One part alone: its value as the request holds it.
    let values = ''
    if (shape.single !== null) values = rawValue(ctx, shape.single)
    else {
      let spec = -1
      for (let i = 0; i < shape.rules.length; i++) {
        const r = shape.rules[i]!
        if (r.spec === spec) continue
        spec = r.spec
        values += this.value(this.specs[spec]!, ctx)
      }
    }
    if (values.length > MAX_KEPT_VALUE) return { rules: this.makeRules(shape, ctx, now), shape }
    let rules = cache.get(values)
    if (rules === undefined) {
      rules = this.makeRules(shape, ctx, now)
      if (cache.size >= MAX_CACHED_VALUES) cache.clear()
      cache.set(values, rules)
    }
    return { rules, shape }
  }

  // A request's rules: each counter key ends with the hash of the key value, so no separator,
  // hash-tag brace or length from a header or claim reaches a counter key.
  private makeRules(shape: Shape, ctx: RequestContext, now: number): LimitRule[] {
    const rules: LimitRule[] = []
    let hashSpec = -1
    let hash = ''
    for (let i = 0; i < shape.rules.length; i++) {
      const r = shape.rules[i]!
      if (r.spec !== hashSpec) {
        hashSpec = r.spec
        hash = hashOf(this.value(this.specs[r.spec]!, ctx))
      }
      rules.push(
        r.calendar === null
          ? { kind: 'sliding', key: r.head + hash, limit: r.limit, windowMs: r.windowMs }
          : { kind: 'calendar', key: r.head + hash, limit: r.limit, resetAt: calendarEnd(now, r.calendar) },
      )
    }
    return rules
  }

  private failurePolicy(): FailurePolicy {
    if (this.policy) return this.policy
    // Quotas deny, throttles allow, when the store cannot say.
    return this.specs.some((s) => s.calendar !== null) ? 'deny' : 'allow'
  }

  // The access-stage step: undefined to go on, or the gateway error that ends the request.
  // The memory store answers at once: no promise, no extra turn of the event loop.
  decide(ctx: RequestContext): GatewayError | undefined | Promise<GatewayError | undefined> {
    const now = this.now()
    const applied = this.rulesFor(ctx, now)
    if (applied.rules.length === 0) return undefined
    let pending
    try {
      pending = this.store.hit(applied.rules, now)
    } catch (err) {
      return this.failed(ctx, applied, now, err)
    }
    if (pending instanceof Promise)
      return pending.then(
        (d) => this.answer(ctx, applied, d),
        (err) => this.failed(ctx, applied, now, err),
      )
    return this.answer(ctx, applied, pending)
  }

  private failed(ctx: RequestContext, applied: Applied, now: number, err: unknown): GatewayError | undefined {
    const policy = this.failurePolicy()
    ctx.limit = { result: policy === 'allow' ? 'store_failure_allowed' : 'store_failure_denied', tier: applied.shape.tier }
    if (now - this.lastFailureLog > 10_000) {
      this.lastFailureLog = now
      failure(
        'store',
        `rate limits of ${this.routeId}: the store failed (${(err as Error).message}); requests are ${policy === 'allow' ? 'admitted' : 'refused'} until it answers`,
      )
    }
    return policy === 'allow' ? undefined : new GatewayError('store_unavailable', 'the gateway cannot check its rate limits now')
  }

  // The early-answer step: a request answered before the decision (a 401 or 403 of an earlier
  // access line, a script's answer) gets the RateLimit fields of the counters it would have
  // met, read without counting. None when its keys cannot be read now (the store is down).
  peekHeaders(ctx: RequestContext): void | Promise<void> {
    if (ctx.limit !== null) return
    const now = this.now()
    const applied = this.rulesFor(ctx, now)
    if (applied.rules.length === 0) return
    let pending
    try {
      pending = this.store.peek(applied.rules, now)
    } catch {
      return
    }
    if (!(pending instanceof Promise)) return void this.setHeaders(ctx, applied, pending)
    return pending.then(
      (d) => void this.setHeaders(ctx, applied, d),
      () => {},
    )
  }

  // The RateLimit fields of decision `d`; returns the rule that speaks for all: the tightest
  // (the fewest requests left, then the soonest reset), or the one that refused.
  private setHeaders(ctx: RequestContext, applied: Applied, d: LimitDecision): RuleShape {
    let t = 0
    for (let i = 1; i < applied.rules.length; i++) {
      if (d.remaining[i]! < d.remaining[t]! || (d.remaining[i] === d.remaining[t] && d.resetMs[i]! < d.resetMs[t]!)) t = i
    }
    if (!d.admitted && d.refusedBy >= 0) t = d.refusedBy
    const rule = applied.shape.rules[t]!
    const resetS = Math.ceil(d.resetMs[t]! / 1000)
    const headers: [string, string][] = [
      ['ratelimit-limit', rule.limitText],
      ['ratelimit-remaining', String(d.remaining[t])],
      ['ratelimit-reset', String(resetS)],
      ['ratelimit-policy', applied.shape.policy],
      ['ratelimit', `"${rule.name}";r=${d.remaining[t]};t=${resetS}`],
    ]
    ctx.responseHeaders = ctx.responseHeaders ? [...ctx.responseHeaders, ...headers] : headers
    return rule
  }

  private answer(ctx: RequestContext, applied: Applied, d: LimitDecision): GatewayError | undefined {
    const rule = this.setHeaders(ctx, applied, d)
    const name = rule.name
    ctx.limit = { result: d.admitted ? 'admitted' : 'refused', tier: applied.shape.tier }
    if (d.admitted) return undefined
    const retry = String(Math.max(1, Math.ceil(d.retryAfterMs / 1000)))
    const quota = rule.calendar !== null
    return new GatewayError(
      quota ? 'quota_exceeded' : 'rate_limited',
      quota ? `the ${name} quota is used up for this period` : `over the ${name} limit of ${rule.limit} requests`,
      {
        'retry-after': retry,
      },
    )
  }
}
