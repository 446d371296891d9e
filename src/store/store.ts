// The one Store interface shared state goes through: embedded memory or Redis.
// Every call answers within a short timeout or rejects with StoreUnavailable: a store that
// is down is an answer (503 store_unavailable, or a route's `on store-failure`), not a hang.
import type { StoredApp } from './app-record.ts'
import type { SessionStore } from './sessions.ts'
import type { AnswerCache } from './cache.ts'
import type { KeyValues } from './kv.ts'

export class StoreUnavailable extends Error {}

// What changed in the app records: one name, or (after a reconnect) possibly all of them.
export type AppChange = { name: string } | { all: true }

export interface AppRecords {
  get(name: string): Promise<StoredApp | null>
  list(): Promise<StoredApp[]>
  // true when the name was new.
  put(app: StoredApp): Promise<boolean>
  // true when there was such an app.
  delete(name: string): Promise<boolean>
  // Called on every instance sharing the store (Redis pub/sub; the memory store in process).
  // Returns the unsubscribe function.
  watch(listener: (change: AppChange) => void): () => void
}

// One limit of a rate decision. `sliding`: at most `limit` admitted requests in any window of
// `windowMs` (an exact sliding log of admission times). `calendar`: at most `limit` in the
// calendar window that ends at `resetAt` (ms since the epoch; a counter that expires then).
export type LimitRule =
  { kind: 'sliding'; key: string; limit: number; windowMs: number } | { kind: 'calendar'; key: string; limit: number; resetAt: number }

// Rules of one decision may share a key (a tier and a cap of one window, say): that key is one
// counter, checked against each rule's limit and counted once. They must then agree on its
// kind and window (one log cannot be kept for two windows): a thrown RangeError otherwise.
export function sameWindowPerKey(rules: readonly LimitRule[], r: LimitRule): void {
  for (const o of rules) {
    if (o === r) return
    if (o.key !== r.key) continue
    const same = o.kind === 'sliding' ? r.kind === 'sliding' && r.windowMs === o.windowMs : r.kind === 'calendar' && r.resetAt === o.resetAt
    if (!same) throw new RangeError(`rate key ${JSON.stringify(r.key.slice(0, 80))} is given twice with different windows`)
  }
}

// The decision for a whole set of limits, taken atomically: admitted only when every limit
// has room, and then counted by every one; refused ones are counted by none.
export interface LimitDecision {
  admitted: boolean
  refusedBy: number // index of the first limit that refused, -1 when admitted
  // Per rule, after this decision: requests left in the window, and ms until the window
  // frees a slot (sliding: the oldest admission leaves it; calendar: the window ends).
  remaining: number[]
  resetMs: number[]
  // When refused: ms until a retry can be admitted by the refusing limit.
  retryAfterMs: number
}

export interface Store {
  readonly kind: 'memory' | 'redis'
  // Resolves when the store answers within its short timeout; rejects with the reason otherwise.
  ping(): Promise<void>
  // Claims a one-time value (a signature nonce) for `ttlMs`: true the first time, false when
  // it was claimed before and has not expired. Cluster-wide with Redis (SET NX PX).
  claimOnce(key: string, ttlMs: number): Promise<boolean>
  readonly apps: AppRecords
  // Login sessions (sessions.ts): tokens kept by their hash, refresh rotation, revocation.
  readonly sessions: SessionStore
  // Answers kept by `cache response` (cache.ts): bounded memory, or Redis keys with a PX expiry.
  readonly cache: AnswerCache
  // Values `script` directives keep (kv.ts): bounded memory, or Redis keys (PX when given a lifetime).
  readonly kv: KeyValues
  // Decides and counts one request against `rules` atomically (one Lua script in Redis; the
  // rules' keys share one hash slot for Redis Cluster). `now` is the caller's clock (the memory
  // store's time; Redis uses its own TIME).
  // The memory store decides at once (no promise); Redis answers with one.
  hit(rules: readonly LimitRule[], now: number): LimitDecision | Promise<LimitDecision>
  // What `hit` would answer now, counting nothing (times that left their window may be
  // dropped): `remaining` is what is left, `admitted` whether a request would be. For the
  // RateLimit fields of an answer given before the decision (a 401 from a `require` line).
  peek(rules: readonly LimitRule[], now: number): LimitDecision | Promise<LimitDecision>
  // Whether change notifications are flowing now. While they are not, a store app may have
  // been revoked without this instance hearing of it: identity checks refuse store apps.
  readonly live: boolean
  close(): Promise<void>
}
