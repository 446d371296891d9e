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

// Key values repeat (an app, an address): each is hashed once, a bounded number of them.
const hashed = new Map<string, string>()
function hashOf(v: string): string {
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

interface Applied {
  rules: LimitRule[]
  names: string[] // RateLimit-Policy name of each rule
  windows: number[] // seconds, for RateLimit-Policy's w=
  tier: string | null
}

export class LimitGroup {
  private readonly specs: LimitSpec[] = []
  private policy: FailurePolicy | null = null
  private readonly tag: string
  private lastFailureLog = 0

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
  }

  onFailure(p: FailurePolicy): void {
    this.policy = p
  }

  private keyOf(spec: LimitSpec, ctx: RequestContext, window: string): string {
    let v = ''
    for (const p of spec.key) v += `${partValue(ctx, p)}\u0000`
    // Values are hashed: no separator, hash-tag brace or length from a header or claim reaches a key.
    return `rl:{${this.tag}}:${spec.source}:${spec.keyText}:${window}:${hashOf(v)}`
  }

  private rulesFor(ctx: RequestContext, now: number): Applied {
    const out: Applied = { rules: [], names: [], windows: [], tier: null }
    for (const spec of this.specs) {
      let rate: TierRate
      let name: string = spec.source
      if (spec.rate === 'tier') {
        const tierName = ctx.identity?.app?.tier ?? null
        const t = tierName === null ? undefined : this.tiers.get(tierName)
        // An app with no tier, or an unlimited one, is not limited by `throttle tier`.
        if (t === undefined || t === 'unlimited') continue
        rate = t
        name = tierName!
        out.tier = tierName
      } else rate = { ...spec.rate, burst: spec.burst }
      if (spec.calendar) {
        out.rules.push({ kind: 'calendar', key: this.keyOf(spec, ctx, spec.calendar), limit: rate.limit, resetAt: calendarEnd(now, spec.calendar) })
        out.names.push(name)
        out.windows.push(CALENDAR_S[spec.calendar])
        continue
      }
      out.rules.push({ kind: 'sliding', key: this.keyOf(spec, ctx, String(rate.windowMs)), limit: rate.limit, windowMs: rate.windowMs })
      out.names.push(name)
      out.windows.push(Math.ceil(rate.windowMs / 1000))
      if (rate.burst > 0 && rate.burst < rate.limit) {
        const windowMs = Math.max(1, Math.round((rate.windowMs * rate.burst) / rate.limit))
        out.rules.push({ kind: 'sliding', key: this.keyOf(spec, ctx, `${windowMs}b`), limit: rate.burst, windowMs })
        out.names.push(`${name}-burst`)
        out.windows.push(Math.ceil(windowMs / 1000))
      }
    }
    return out
  }

  // RateLimit-Policy is the same for every request with the same tier: made once per tier.
  private readonly policies = new Map<string | null, string>()
  private policyHeader(applied: Applied): string {
    let p = this.policies.get(applied.tier)
    if (p === undefined) {
      p = applied.rules.map((r, i) => `"${applied.names[i]}";q=${r.limit};w=${applied.windows[i]}`).join(', ')
      this.policies.set(applied.tier, p)
    }
    return p
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
      pending = this.store.hit(applied.rules, ctx.id, now)
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
    ctx.limit = { result: policy === 'allow' ? 'store_failure_allowed' : 'store_failure_denied', tier: applied.tier }
    if (now - this.lastFailureLog > 10_000) {
      this.lastFailureLog = now
      failure(
        'store',
        `rate limits of ${this.routeId}: the store failed (${(err as Error).message}); requests are ${policy === 'allow' ? 'admitted' : 'refused'} until it answers`,
      )
    }
    return policy === 'allow' ? undefined : new GatewayError('store_unavailable', 'the gateway cannot check its rate limits now')
  }

  private answer(ctx: RequestContext, applied: Applied, d: LimitDecision): GatewayError | undefined {
    // The tightest limit: the fewest requests left (then the soonest reset) speaks for all.
    let t = 0
    for (let i = 1; i < applied.rules.length; i++) {
      if (d.remaining[i]! < d.remaining[t]! || (d.remaining[i] === d.remaining[t] && d.resetMs[i]! < d.resetMs[t]!)) t = i
    }
    if (!d.admitted) t = d.refusedBy
    const rule = applied.rules[t]!
    const resetS = Math.ceil(d.resetMs[t]! / 1000)
    const name = applied.names[t]!
    const headers: [string, string][] = [
      ['ratelimit-limit', String(rule.limit)],
      ['ratelimit-remaining', String(d.remaining[t])],
      ['ratelimit-reset', String(resetS)],
      ['ratelimit-policy', this.policyHeader(applied)],
      ['ratelimit', `"${name}";r=${d.remaining[t]};t=${resetS}`],
    ]
    ctx.responseHeaders = ctx.responseHeaders ? [...ctx.responseHeaders, ...headers] : headers
    ctx.limit = { result: d.admitted ? 'admitted' : 'refused', tier: applied.tier }
    if (d.admitted) return undefined
    const retry = String(Math.max(1, Math.ceil(d.retryAfterMs / 1000)))
    const quota = rule.kind === 'calendar'
    return new GatewayError(
      quota ? 'quota_exceeded' : 'rate_limited',
      quota ? `the ${name} quota is used up for this period` : `over the ${name} limit of ${rule.limit} requests`,
      {
        'retry-after': retry,
      },
    )
  }
}
