// The embedded store's key/values: one process's memory, bounded by a number of keys and of
// bytes. The least recently used keys go first when a new value needs room; an expired value
// is never returned and is dropped when met, or in a sweep when room is needed.
import type { KeyValues } from './kv.ts'

export interface MemoryKeyValueLimits {
  maxKeys: number
  maxBytes: number
  now?: () => number // ms since the epoch (tests pass their own clock)
}

export const MEMORY_KV_LIMITS: MemoryKeyValueLimits = { maxKeys: 100_000, maxBytes: 32 * 1024 * 1024 }

// A full sweep for expired values costs a walk over all of them: at most this often.
const SWEEP_EVERY_MS = 1_000

interface Slot {
  value: string
  size: number
  expiresAt: number // Infinity without a lifetime
}

export class MemoryKeyValues implements KeyValues {
  // In use order: the least recently used first (a read moves its key to the back).
  private readonly slots = new Map<string, Slot>()
  private bytes = 0
  private sweptAt = -Infinity
  private readonly now: () => number

  constructor(private readonly limits: MemoryKeyValueLimits = MEMORY_KV_LIMITS) {
    this.now = limits.now ?? Date.now
  }

  get size(): { keys: number; bytes: number } {
    return { keys: this.slots.size, bytes: this.bytes }
  }

  async get(key: string): Promise<string | null> {
    const slot = this.slots.get(key)
    if (slot === undefined) return null
    this.slots.delete(key)
    if (slot.expiresAt <= this.now()) {
      this.bytes -= slot.size
      return null
    }
    this.slots.set(key, slot)
    return slot.value
  }

  async set(key: string, value: string, ttlMs: number | null): Promise<void> {
    const size = 64 + (key.length + value.length) * 2
    this.drop(key)
    if (size > this.limits.maxBytes || (ttlMs !== null && ttlMs <= 0)) return
    this.makeRoom(size)
    this.slots.set(key, { value, size, expiresAt: ttlMs === null ? Infinity : this.now() + ttlMs })
    this.bytes += size
  }

  async delete(key: string): Promise<boolean> {
    const slot = this.slots.get(key)
    if (slot === undefined) return false
    this.drop(key)
    return slot.expiresAt > this.now()
  }

  private drop(key: string): void {
    const old = this.slots.get(key)
    if (old === undefined) return
    this.slots.delete(key)
    this.bytes -= old.size
  }

  private full(size: number): boolean {
    return this.slots.size >= this.limits.maxKeys || this.bytes + size > this.limits.maxBytes
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
