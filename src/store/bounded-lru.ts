// One process's memory for values that expire: bounded by a number of keys and of bytes. The
// least recently used keys go first when a new value needs room; an expired value is never
// returned and is dropped when met, or in a sweep when room is needed. The answer cache and
// the scripts' key/values of the embedded store are both this.
export interface LruLimits {
  maxKeys: number
  maxBytes: number
  now?: () => number // ms since the epoch (tests pass their own clock)
}

// A full sweep for expired values costs a walk over all of them: at most this often.
const SWEEP_EVERY_MS = 1_000

interface Slot<V> {
  value: V
  size: number
  expiresAt: number // Infinity without a lifetime
}

export class BoundedLru<V> {
  // In use order: the least recently used first (a read moves its key to the back).
  private readonly slots = new Map<string, Slot<V>>()
  private bytes = 0
  private sweptAt = -Infinity
  readonly now: () => number

  constructor(private readonly limits: LruLimits) {
    this.now = limits.now ?? Date.now
  }

  get size(): { keys: number; bytes: number } {
    return { keys: this.slots.size, bytes: this.bytes }
  }

  get(key: string): V | null {
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

  // Replaces the key's value; one larger than the whole budget, or already expired, is not kept.
  set(key: string, value: V, size: number, expiresAt: number): void {
    this.drop(key)
    if (size > this.limits.maxBytes || expiresAt <= this.now()) return
    this.makeRoom(size)
    this.slots.set(key, { value, size, expiresAt })
    this.bytes += size
  }

  // True when the key held a value that had not expired.
  delete(key: string): boolean {
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
