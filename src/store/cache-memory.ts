// The embedded store's answer cache: one process's memory, bounded by a number of entries and
// of bytes. Least recently used entries go first when a new one needs room; an expired entry
// is never served and is dropped when met, or in a sweep when room is needed.
import { entrySize, type AnswerCache, type CacheEntry } from './cache.ts'

export interface MemoryCacheLimits {
  maxEntries: number
  maxBytes: number
  now?: () => number // ms since the epoch (tests pass their own clock)
}

export const MEMORY_CACHE_LIMITS: MemoryCacheLimits = { maxEntries: 10_000, maxBytes: 64 * 1024 * 1024 }

// A full sweep for expired entries costs a walk over all of them: at most this often.
const SWEEP_EVERY_MS = 1_000

interface Slot {
  entry: CacheEntry
  size: number
  expiresAt: number
}

export class MemoryAnswerCache implements AnswerCache {
  // In use order: the least recently used first (a hit moves its key to the back).
  private readonly slots = new Map<string, Slot>()
  private bytes = 0
  private sweptAt = -Infinity
  private readonly now: () => number

  constructor(private readonly limits: MemoryCacheLimits = MEMORY_CACHE_LIMITS) {
    this.now = limits.now ?? Date.now
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.slots.size, bytes: this.bytes }
  }

  async get(key: string): Promise<CacheEntry | null> {
    const slot = this.slots.get(key)
    if (slot === undefined) return null
    this.slots.delete(key)
    if (slot.expiresAt <= this.now()) {
      this.bytes -= slot.size
      return null
    }
    this.slots.set(key, slot)
    return slot.entry
  }

  async put(key: string, entry: CacheEntry): Promise<void> {
    const size = entrySize(key, entry)
    this.drop(key)
    if (size > this.limits.maxBytes || entry.ttlMs <= 0) return
    this.makeRoom(size)
    this.slots.set(key, { entry, size, expiresAt: entry.storedAt + entry.ttlMs })
    this.bytes += size
  }

  private drop(key: string): void {
    const old = this.slots.get(key)
    if (old === undefined) return
    this.slots.delete(key)
    this.bytes -= old.size
  }

  private full(size: number): boolean {
    return this.slots.size >= this.limits.maxEntries || this.bytes + size > this.limits.maxBytes
  }

  private makeRoom(size: number): void {
    if (!this.full(size)) return
    const now = this.now()
    if (now - this.sweptAt >= SWEEP_EVERY_MS) {
      this.sweptAt = now
      for (const [k, s] of this.slots) if (s.expiresAt <= now) this.drop(k)
    }
    for (const k of this.slots.keys()) {
      if (!this.full(size)) break
      this.drop(k)
    }
  }
}
