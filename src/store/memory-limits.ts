// Rate decisions in one process's memory: the same rules and answers as the Redis script
// (src/store/redis-limits.ts), so a policy behaves alike on both stores.
import { sameWindowPerKey, type LimitDecision, type LimitRule } from './store.ts'

// Admission times of one sliding window, oldest first (a queue with a moving head). An
// admission at t leaves the window of w ms when the clock reads t + w: the gateway's clock has
// a fraction of a millisecond (src/runtime/clock.ts), so that is never a moment early.
interface Log {
  times: number[]
  head: number
  expires: number
}
interface Counter {
  count: number
  expires: number
}

const SWEEP_EVERY = 4096

export class MemoryLimits {
  private readonly logs = new Map<string, Log>()
  private readonly counters = new Map<string, Counter>()
  private calls = 0

  // count false: a peek (Store.peek), which writes nothing.
  hit(rules: readonly LimitRule[], now: number, count = true): LimitDecision {
    if (++this.calls % SWEEP_EVERY === 0) this.sweep(now)
    if (rules.length > 1) for (const r of rules) sameWindowPerKey(rules, r)
    // Per rule: what is left before this request, when the oldest counted one leaves, and the
    // log or counter found (looked up once).
    const remaining: number[] = []
    const resetMs: number[] = []
    const found: (Log | Counter | undefined)[] = []
    let refusedBy = -1
    let retryAfterMs = 0
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!
      if (r.kind === 'sliding') {
        const log = this.log(r.key, now - r.windowMs)
        const n = log.times.length - log.head
        found.push(log)
        remaining.push(r.limit - n)
        resetMs.push(n === 0 ? r.windowMs : Math.max(0, log.times[log.head]! + r.windowMs - now))
        if (n >= r.limit && refusedBy === -1) {
          refusedBy = i
          // A slot frees when the oldest of the last `limit` admissions leaves the window.
          retryAfterMs = Math.max(1, log.times[log.times.length - r.limit]! + r.windowMs - now)
        }
      } else {
        let c = this.counters.get(r.key)
        if (c !== undefined && c.expires <= now) c = undefined
        const n = c === undefined ? 0 : c.count
        found.push(c)
        remaining.push(r.limit - n)
        resetMs.push(Math.max(0, r.resetAt - now))
        if (n >= r.limit && refusedBy === -1) {
          refusedBy = i
          retryAfterMs = r.resetAt - now
        }
      }
    }
    const admitted = refusedBy === -1
    if (!count) {
      for (let i = 0; i < rules.length; i++) if (remaining[i]! < 0) remaining[i] = 0
      return { admitted, refusedBy, remaining, resetMs, retryAfterMs: Math.max(0, retryAfterMs) }
    }
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!
      if (admitted) {
        remaining[i]!--
        // A key met again in this decision is the same counter: counted once.
        if (i > 0 && rules.findIndex((o) => o.key === r.key) < i) {
          if (remaining[i]! < 0) remaining[i] = 0
          continue
        }
        if (r.kind === 'sliding') {
          const log = found[i] as Log
          log.times.push(now)
          log.expires = now + r.windowMs
        } else {
          const c = found[i] as Counter | undefined
          if (c !== undefined) c.count++
          else this.counters.set(r.key, { count: 1, expires: r.resetAt })
        }
      }
      if (remaining[i]! < 0) remaining[i] = 0
    }
    return { admitted, refusedBy, remaining, resetMs, retryAfterMs: Math.max(0, retryAfterMs) }
  }

  // The log of `key` without the admissions at or before `after`.
  private log(key: string, after: number): Log {
    let log = this.logs.get(key)
    if (!log) this.logs.set(key, (log = { times: [], head: 0, expires: 0 }))
    while (log.head < log.times.length && log.times[log.head]! <= after) log.head++
    // Dropped admissions are cut off once they are the larger part: the live ones are copied
    // at most once per as many admissions, and a log stays about the size of its window.
    if (log.head >= 64 && log.head * 2 >= log.times.length) {
      log.times = log.times.slice(log.head)
      log.head = 0
    }
    return log
  }

  private sweep(now: number): void {
    for (const [k, l] of this.logs) if (l.expires <= now) this.logs.delete(k)
    for (const [k, c] of this.counters) if (c.expires <= now) this.counters.delete(k)
  }
}
