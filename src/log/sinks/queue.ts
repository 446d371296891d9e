// What a sink holds, in delivery order: the batch being delivered, then the spool on disk (older
// entries), then memory (the newest). A batch leaves only once every line of it was taken; until
// then it is sent again first, so entries arrive in the order the gateway logged them.
import type { AccessLogEntry } from '../../runtime/context.ts'
import { keptLine } from '../access-log.ts'
import { sinkEvent } from './events.ts'
import type { SinkHealth } from './health.ts'
import type { SinkSpec } from './spec.ts'
import { Spool, type SpoolPosition } from './spool.ts'

// A batch being delivered: lines still to go are `pending`; `spooled` is set when the batch is
// (also) the head of the spool, whose cursor then moves once every line went.
export interface Inflight {
  lines: string[]
  ids: string[]
  pending: number[]
  spooled: SpoolPosition | null
}

const SPOOL_RETRY_MS = 10_000 // a spool that could not be opened or read is tried again after this

const range = (n: number) => Array.from({ length: n }, (_, i) => i)
export const message = (err: unknown) => (err instanceof Error ? err.message : String(err))

function idOf(line: string): string {
  try {
    const id = (JSON.parse(line) as { request_id?: unknown }).request_id
    return typeof id === 'string' ? id : ''
  } catch {
    return ''
  }
}

export class SinkQueue {
  memory: AccessLogEntry[] = []
  inflight: Inflight | null = null
  private firstAt = 0
  private spool: Spool | null = null
  private spoolRetryAt = 0

  constructor(
    private readonly spec: () => SinkSpec,
    private readonly dir: string, // this sink's directory under --spool
    private readonly health: SinkHealth,
  ) {}

  private get name(): string {
    return this.spec().name
  }

  // Entries in memory, a batch taken from it included (not delivered, not in the spool).
  get queued(): number {
    return this.memory.length + (this.inflight && !this.inflight.spooled ? this.inflight.pending.length : 0)
  }

  get spoolBytes(): number {
    return this.spool?.bytes ?? 0
  }

  get empty(): boolean {
    return this.memory.length === 0 && this.inflight === null && this.spoolBytes === 0
  }

  // A serving gateway: entries a stopped one left in the spool are delivered from the start.
  openLeftovers(): void {
    if (Spool.hasLeftovers(this.dir)) this.openSpool()
  }

  setCap(bytes: number): void {
    if (this.spool) this.spool.cap = bytes
  }

  push(entry: AccessLogEntry): number {
    if (this.memory.push(entry) === 1) this.firstAt = performance.now()
    return this.memory.length
  }

  // Picks the next batch into `inflight` (the one held, the spool's head, or memory's); else
  // how long to wait for one (Infinity: until an entry comes). `flushing`: no waiting for `every`.
  take(flushing: boolean): number {
    if (this.inflight) return 0
    const spool = this.spool
    const { batch, everyMs } = this.spec()
    if (spool && spool.bytes > 0) {
      let b: ReturnType<Spool['peek']>
      try {
        b = spool.peek(batch)
      } catch (err) {
        // Left on disk for the next start; meanwhile the sink goes on from memory.
        sinkEvent('error', this.name, `the spool at ${spool.dir} cannot be read: ${message(err)}; its entries stay there`)
        this.spool = null
        this.spoolRetryAt = performance.now() + SPOOL_RETRY_MS
        return 0
      }
      if (b && b.lines.length === 0) {
        spool.commit(b.end) // a cut line, skipped
        return 0
      }
      if (b) {
        this.inflight = { lines: b.lines, ids: b.lines.map(idOf), pending: range(b.lines.length), spooled: b.end }
        return 0
      }
    }
    if (this.memory.length === 0) return Infinity
    const wait = this.memory.length >= batch || flushing ? 0 : this.firstAt + everyMs - performance.now()
    if (wait > 0) return wait
    const taken = this.memory.splice(0, batch)
    this.firstAt = performance.now()
    const { lines, ids } = this.serialize(taken)
    if (lines.length > 0) this.inflight = { lines, ids, pending: range(lines.length), spooled: null }
    return 0
  }

  // Every line of the batch was taken (or refused for good): it leaves, from the spool too.
  done(): void {
    if (this.inflight?.spooled) this.spool?.commit(this.inflight.spooled)
    this.inflight = null
    const { spoolBytes, queue } = this.spec()
    if (this.health.full && this.spoolBytes < spoolBytes * 0.9 && this.memory.length < queue) this.health.noRoom(false)
  }

  private serialize(entries: AccessLogEntry[]): { lines: string[]; ids: string[] } {
    const lines: string[] = []
    const ids: string[] = []
    for (const e of entries) {
      try {
        // The stdout access log's JSON when it made one (its line ends in a newline).
        const made = keptLine(e)
        lines.push(typeof made === 'string' ? made.slice(0, -1) : JSON.stringify(e))
        ids.push(String(e.request_id))
      } catch {
        this.health.drop('unserializable', 1)
      }
    }
    return { lines, ids }
  }

  // Memory (and a batch taken from it) to the spool, in order. `final`: at shutdown, the batch
  // goes to the spool whatever its cap, at its end if it cannot be its head (the order bends).
  spill(final = false): void {
    const inf = this.inflight
    const fromMemory = inf !== null && inf.spooled === null
    if (!fromMemory && this.memory.length === 0) return
    const spec = this.spec()
    const spool = this.openSpool()
    if (!spool) {
      const over = this.memory.length - spec.queue
      if (over > 0) {
        this.memory.length = spec.queue
        this.health.drop('queue_full', over)
        this.health.noRoom(true, 'the spool cannot be used and the queue is full', spec.spoolBytes)
      }
      return
    }
    try {
      // The batch becomes the spool's head when the spool is empty and has room for all of it;
      // otherwise it stays in memory and is still sent first (it is older than the spool).
      if (fromMemory) {
        const pending = inf.pending.map((i) => inf.lines[i]!)
        const bytes = pending.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0)
        if (final || (spool.bytes === 0 && bytes <= spool.cap)) inf.spooled = spool.append(pending, true).end
      }
      const { lines } = this.serialize(this.memory)
      this.memory = []
      const { written } = spool.append(lines)
      if (written < lines.length) {
        this.health.drop('spool_full', lines.length - written)
        this.health.noRoom(true, `spool full (${spec.spoolBytes} bytes under ${this.dir})`, spec.spoolBytes)
      }
    } catch (err) {
      sinkEvent('error', this.name, `the spool at ${spool.dir} failed: ${message(err)}; entries are held in memory only`)
      this.spool = null
      this.spoolRetryAt = performance.now() + SPOOL_RETRY_MS
    }
  }

  private openSpool(): Spool | null {
    if (this.spool) return this.spool
    if (performance.now() < this.spoolRetryAt) return null
    try {
      this.spool = Spool.open(this.dir, this.spec().spoolBytes)
    } catch (err) {
      this.spoolRetryAt = performance.now() + SPOOL_RETRY_MS
      sinkEvent('error', this.name, `cannot use the spool under ${this.dir}: ${message(err)}; entries are held in memory only`)
    }
    return this.spool
  }

  // Shutdown: everything to the spool, which is synced and let go; what it could not take.
  close(final: boolean): number {
    if (final) this.spill(true)
    const lost = this.queued
    this.memory = []
    this.spool?.close()
    this.spool = null
    return lost
  }
}
