// The embedded store's key/values: one process's memory, bounded by a number of keys and of
// bytes (bounded-lru.ts: least recently used first out, expired values never returned).
import { BoundedLru } from './bounded-lru.ts'
import type { KeyValues } from './kv.ts'

export interface MemoryKeyValueLimits {
  maxKeys: number
  maxBytes: number
  now?: () => number // ms since the epoch (tests pass their own clock)
}

export const MEMORY_KV_LIMITS: MemoryKeyValueLimits = { maxKeys: 100_000, maxBytes: 32 * 1024 * 1024 }

export class MemoryKeyValues implements KeyValues {
  private readonly lru: BoundedLru<string>

  constructor(limits: MemoryKeyValueLimits = MEMORY_KV_LIMITS) {
    this.lru = new BoundedLru(limits)
  }

  get size(): { keys: number; bytes: number } {
    return this.lru.size
  }

  async get(key: string): Promise<string | null> {
    return this.lru.get(key)
  }

  async set(key: string, value: string, ttlMs: number | null): Promise<void> {
    if (ttlMs !== null && ttlMs <= 0) return void this.lru.delete(key)
    this.lru.set(key, value, 64 + (key.length + value.length) * 2, ttlMs === null ? Infinity : this.lru.now() + ttlMs)
  }

  async delete(key: string): Promise<boolean> {
    return this.lru.delete(key)
  }
}
