// The one Store interface shared state goes through: embedded memory or Redis.
// Every call answers within a short timeout or rejects with StoreUnavailable: a store that
// is down is an answer (503 store_unavailable, or a route's `on store-failure`), not a hang.
import type { StoredApp } from './app-record.ts'

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

export interface Store {
  readonly kind: 'memory' | 'redis'
  // Resolves when the store answers within its short timeout; rejects with the reason otherwise.
  ping(): Promise<void>
  // Claims a one-time value (a signature nonce) for `ttlMs`: true the first time, false when
  // it was claimed before and has not expired. Cluster-wide with Redis (SET NX PX).
  claimOnce(key: string, ttlMs: number): Promise<boolean>
  readonly apps: AppRecords
  // Whether change notifications are flowing now. While they are not, a store app may have
  // been revoked without this instance hearing of it: identity checks refuse store apps.
  readonly live: boolean
  close(): Promise<void>
}
