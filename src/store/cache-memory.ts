// The embedded store's answer cache: one process's memory, bounded by a number of entries and
// of bytes (bounded-lru.ts: least recently used first out, expired entries never served).
import { BoundedLru } from './bounded-lru.ts'
import { entrySize, type AnswerCache, type CacheEntry } from './cache.ts'

export interface MemoryCacheLimits {
  maxEntries: number
  maxBytes: number
  now?: () => number // ms since the epoch (tests pass their own clock)
}

export const MEMORY_CACHE_LIMITS: MemoryCacheLimits = { maxEntries: 10_000, maxBytes: 64 * 1024 * 1024 }

export class MemoryAnswerCache implements AnswerCache {
  private readonly lru: BoundedLru<CacheEntry>

  constructor(limits: MemoryCacheLimits = MEMORY_CACHE_LIMITS) {
    this.lru = new BoundedLru({ maxKeys: limits.maxEntries, maxBytes: limits.maxBytes, now: limits.now })
  }

  get size(): { entries: number; bytes: number } {
    const { keys, bytes } = this.lru.size
    return { entries: keys, bytes }
  }

  async get(key: string): Promise<CacheEntry | null> {
    return this.lru.get(key)
  }

  async put(key: string, entry: CacheEntry): Promise<void> {
    if (entry.ttlMs <= 0) return void this.lru.delete(key)
    this.lru.set(key, entry, entrySize(key, entry), entry.storedAt + entry.ttlMs)
  }
}
