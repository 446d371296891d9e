// Rate decisions in one process's memory: the same rules and answers as the Redis script
// (src/store/redis-limits.ts), so a policy behaves alike on both stores.
import type { LimitDecision, LimitRule } from './store.ts'

// Admission times of one sliding window, oldest first (a queue with a moving head).
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

  hit(rules: readonly LimitRule[], now: number): LimitDecision {
    if (++this.calls % SWEEP_EVERY === 0) this.sweep(now)
    const used: number[] = []
    const resetMs: number[] = []
    let refusedBy = -1
    let retryAfterMs = 0
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!
      if (r.kind === 'sliding') {
        const log = this.log(r.key, now - r.windowMs)
        const n = log.times.length - log.head
        used.push(n)
        resetMs.push(n === 0 ? r.windowMs : log.times[log.head]! + r.windowMs - now)
        if (n >= r.limit && refusedBy === -1) {
          refusedBy = i
          // A slot frees when the oldest of the last `limit` admissions leaves the window.
          retryAfterMs = log.times[log.times.length - r.limit]! + r.windowMs - now
        }
      } else {
        const c = this.counters.get(r.key)
        const n = c && c.expires > now ? c.count : 0
        used.push(n)
        resetMs.push(r.resetAt - now)
        if (n >= r.limit && refusedBy === -1) {
          refusedBy = i
          retryAfterMs = r.resetAt - now
        }
      }
    }
    const admitted = refusedBy === -1
    if (admitted) {
      for (const r of rules) {
        if (r.kind === 'sliding') {
          const log = this.logs.get(r.key)!
          log.times.push(now)
          log.expires = now + r.windowMs
        } else {
          const c = this.counters.get(r.key)
          if (c && c.expires > now) c.count++
          else this.counters.set(r.key, { count: 1, expires: r.resetAt })
        }
      }
    }
    return {
      admitted,
      refusedBy,
      remaining: rules.map((r, i) => Math.max(0, r.limit - used[i]! - (admitted ? 1 : 0))),
      resetMs: resetMs.map((ms) => Math.max(0, ms)),
      retryAfterMs: Math.max(0, retryAfterMs),
    }
  }

  // The log of `key` without the admissions at or before `after`.
  private log(key: string, after: number): Log {
    let log = this.logs.get(key)
    if (!log) this.logs.set(key, (log = { times: [], head: 0, expires: 0 }))
    while (log.head < log.times.length && log.times[log.head]! <= after) log.head++
    if (log.head > 1024 && log.head * 2 > log.times.length) {
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
