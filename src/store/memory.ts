// The embedded store: one process's memory. Shared by every program of the process (reloads
// keep nonces and apps); with --workers each worker has its own, so nonces and store apps
// need --redis to be shared (the README says so).
import type { StoredApp } from './app-record.ts'
import type { AppChange, AppRecords, Store } from './store.ts'
import { MemoryLimits } from './memory-limits.ts'
import { memorySessions } from './sessions-memory.ts'
import { MEMORY_CACHE_LIMITS, MemoryAnswerCache } from './cache-memory.ts'
import { MEMORY_KV_LIMITS, MemoryKeyValues } from './kv-memory.ts'

const SWEEP_EVERY = 1024

export interface MemoryStoreOptions {
  // The clock of nonces, sessions, cached answers and script values (tests pass their own).
  now?: () => number
}

export function memoryStore(opts: MemoryStoreOptions = {}): Store {
  const clock = opts.now ?? Date.now
  const once = new Map<string, number>() // key → expiry (ms since epoch)
  let claims = 0
  const apps = new Map<string, StoredApp>()
  const listeners = new Set<(c: AppChange) => void>()
  const limits = new MemoryLimits()
  const notify = (c: AppChange) => queueMicrotask(() => listeners.forEach((l) => l(c)))

  // Claims are kept in the order they were made, and one route's nonces share a lifetime: the
  // expired ones are at the front. (A different lifetime only delays a sweep, never keeps a
  // claim past its end: claimOnce checks the expiry itself.)
  function sweep(now: number): void {
    for (const [k, exp] of once) {
      if (exp > now) break
      once.delete(k)
    }
  }

  const records: AppRecords = {
    get: async (name) => apps.get(name) ?? null,
    list: async () => [...apps.values()],
    async put(app) {
      const fresh = !apps.has(app.name)
      apps.set(app.name, app)
      notify({ name: app.name })
      return fresh
    },
    async delete(name) {
      const had = apps.delete(name)
      if (had) notify({ name })
      return had
    },
    watch(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }

  return {
    kind: 'memory',
    live: true,
    ping: async () => {},
    async claimOnce(key, ttlMs) {
      const now = clock()
      if (++claims % SWEEP_EVERY === 0) sweep(now)
      const exp = once.get(key)
      if (exp !== undefined && exp > now) return false
      once.delete(key) // to the back of the order
      once.set(key, now + ttlMs)
      return true
    },
    apps: records,
    sessions: memorySessions(clock),
    cache: new MemoryAnswerCache({ ...MEMORY_CACHE_LIMITS, now: clock }),
    kv: new MemoryKeyValues({ ...MEMORY_KV_LIMITS, now: clock }),
    hit: (rules, now) => limits.hit(rules, now),
    peek: (rules, now) => limits.hit(rules, now, false),
    close: async () => {
      listeners.clear()
    },
  }
}
