// One sink: its queue (memory, then the spool on disk; queue.ts) and one delivery loop that
// sends one batch at a time, waits out a backoff after a failure, and swaps its transport when
// a reload changed the target. `offer` never waits and never throws: the request path only
// pushes onto an array.
import type { AccessLogEntry } from '../../runtime/context.ts'
import { keepLine } from '../access-log.ts'
import { sinkEvent } from './events.ts'
import { SinkHealth, type DropReason } from './health.ts'
import { message, SinkQueue, type Inflight } from './queue.ts'
import type { SinkInput, SinkSpec, SinkTarget } from './spec.ts'
import type { Outcome, Transport } from './transport.ts'

export { DROP_REASONS, type DropReason } from './health.ts'

export interface SinkStatus {
  name: string
  kind: SinkTarget['kind']
  up: boolean
  queued: number // entries in memory (not yet delivered, not in the spool)
  spoolBytes: number
  spoolCap: number
  spoolFull: boolean
  delivered: number
  dropped: Record<DropReason, number>
  errors: number // failed delivery attempts
}

export interface SinkEnv {
  spoolDir: string // this sink's directory under --spool
  openTransport(target: SinkTarget): Promise<Transport>
}

const SPILL_EVERY_MS = 100 // while a sink is down, memory goes to disk this often
const STOP_FLUSH_MS = 2_000 // at shutdown, delivering what memory holds may take this long

export class Sink implements SinkInput {
  refs = 0
  private readonly health = new SinkHealth(() => this.name)
  private readonly queue: SinkQueue
  private transportP: Promise<Transport> | null = null
  private transportKey = ''
  private where = '' // the transport's description, for events
  private running = false
  private wakeup: (() => void) | null = null
  private wakeable = false
  private kickScheduled = false
  private spillTimer: ReturnType<typeof setTimeout> | null = null
  private flushing = false
  private stopped = false
  private retired = false

  constructor(
    public spec: SinkSpec,
    private readonly env: SinkEnv,
  ) {
    this.queue = new SinkQueue(() => this.spec, env.spoolDir, this.health)
  }

  get name(): string {
    return this.spec.name
  }

  // A serving gateway: entries a stopped one left in the spool are delivered from the start.
  start(): void {
    this.queue.openLeftovers()
    this.ensureRunning()
  }

  configure(spec: SinkSpec): void {
    this.spec = spec
    this.queue.setCap(spec.spoolBytes)
    this.kick()
  }

  offer(entry: AccessLogEntry): void {
    try {
      if (this.stopped) return void this.health.drop('stopped', 1)
      keepLine(entry)
      const n = this.queue.push(entry)
      if (n >= this.spec.queue) this.spill()
      else if (this.health.down && this.spillTimer === null) {
        this.spillTimer = setTimeout(() => this.spill(), SPILL_EVERY_MS)
        this.spillTimer.unref?.()
      }
      this.ensureRunning()
      if (this.spec.everyMs === 0 || n === 1 || n >= this.spec.batch) this.kick()
    } catch (err) {
      sinkEvent('error', this.name, `could not queue an entry: ${message(err)}`)
    }
  }

  // The last program using this sink is gone: deliver what is left, then close.
  retire(): void {
    this.retired = true
    this.ensureRunning()
    this.kick()
  }

  revive(): void {
    this.retired = false
  }

  reopen(): void {
    void this.transportP?.then((t) => t.reopen?.()).catch(() => {})
  }

  status(): SinkStatus {
    const h = this.health
    return {
      name: this.name,
      kind: this.spec.target.kind,
      up: !h.down,
      queued: this.queue.queued,
      spoolBytes: this.queue.spoolBytes,
      spoolCap: this.spec.spoolBytes,
      spoolFull: h.full,
      delivered: h.delivered,
      dropped: { ...h.dropped },
      errors: h.errors,
    }
  }

  // Shutdown: a sink that answers gets a moment to take what memory holds; the rest goes to the
  // spool (delivered by the next gateway on the same --spool).
  async stop(flushMs = STOP_FLUSH_MS): Promise<void> {
    if (this.stopped) return
    this.flushing = true
    this.kick()
    const deadline = performance.now() + flushMs
    while (!this.health.down && performance.now() < deadline && this.queue.queued > 0) await Bun.sleep(10)
    this.stopped = true
    if (this.spillTimer) clearTimeout(this.spillTimer)
    this.wakeup?.()
    const lost = this.queue.close(true)
    if (lost > 0) {
      this.health.drop('stopped', lost)
      sinkEvent('error', this.name, `${lost} entries lost at shutdown: the spool could not take them`)
    }
    await this.closeTransport()
  }

  private spill(): void {
    if (this.spillTimer) clearTimeout(this.spillTimer)
    this.spillTimer = null
    this.queue.spill()
  }

  // The loop starts on the next turn of the event loop: the entries of this one go together.
  private ensureRunning(): void {
    if (this.running || this.stopped) return
    this.running = true
    setImmediate(() => void this.run())
  }

  private kick(): void {
    if (!this.wakeup || !this.wakeable || this.kickScheduled) return
    this.kickScheduled = true
    // One wake-up per event-loop turn: the entries of that turn go in one batch.
    setImmediate(() => {
      this.kickScheduled = false
      if (this.wakeable) this.wakeup?.()
    })
  }

  private sleep(ms: number, wakeable: boolean): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === Infinity ? null : setTimeout(() => done(), Math.max(0, ms))
      timer?.unref?.()
      const done = () => {
        if (timer) clearTimeout(timer)
        this.wakeup = null
        this.wakeable = false
        resolve()
      }
      this.wakeup = done
      this.wakeable = wakeable
    })
  }

  private async run(): Promise<void> {
    let broke = false
    try {
      while (!this.stopped) {
        const wait = this.queue.take(this.flushing)
        const batch = this.queue.inflight
        if (batch === null) {
          if (wait === 0) continue
          if (this.retired && this.queue.empty) return await this.finish()
          await this.sleep(wait, true)
          continue
        }
        if (!(await this.send(batch)) && !this.stopped) await this.sleep(this.health.backoff(this.spec.backoff.minMs, this.spec.backoff.maxMs), false)
      }
    } catch (err) {
      broke = true
      sinkEvent('error', this.name, `delivery stopped: ${message(err)}; it starts again with the next entry`)
    } finally {
      this.running = false
      // Entries that came while it was closing (a body still streaming from an old program).
      if (!broke && this.queue.memory.length > 0) this.ensureRunning()
    }
  }

  private async send(inf: Inflight): Promise<boolean> {
    const idx = inf.pending
    const batch = { lines: idx.map((i) => inf.lines[i]!), ids: idx.map((i) => inf.ids[i]!) }
    let outcomes: Outcome[]
    let error: string | null = null
    try {
      const transport = await this.transport()
      this.where = transport.describe
      outcomes = await transport.deliver(batch)
      if (outcomes.length !== batch.lines.length) throw new Error(`${outcomes.length} answers for ${batch.lines.length} entries`)
    } catch (err) {
      error = message(err)
      outcomes = batch.lines.map(() => 'retry')
    }
    if (this.stopped) return false // the spool was closed meanwhile: this batch is sent again next time
    const retry: number[] = []
    let rejected = 0
    outcomes.forEach((o, k) => {
      if (o === 'ok') this.health.delivered++
      else if (o === 'retry') retry.push(idx[k]!)
      else rejected++
    })
    if (rejected > 0) this.health.drop('rejected', rejected)
    if (retry.length > 0) {
      inf.pending = retry
      this.health.failing(error ?? `${retry.length} of ${batch.lines.length} entries not taken`, this.where)
      this.spill()
      return false
    }
    this.queue.done()
    this.health.working()
    return true
  }

  private async transport(): Promise<Transport> {
    const key = JSON.stringify(this.spec.target)
    if (this.transportP && key !== this.transportKey) await this.closeTransport()
    if (!this.transportP) {
      this.transportKey = key
      const p = this.env.openTransport(this.spec.target)
      this.transportP = p
      p.catch(() => {
        if (this.transportP === p) this.transportP = null
      })
    }
    return this.transportP
  }

  private async closeTransport(): Promise<void> {
    const p = this.transportP
    this.transportP = null
    await p?.then((t) => t.close()).catch(() => {})
  }

  // Retired and empty: the spool slot goes (an entry that still comes starts the loop again).
  private async finish(): Promise<void> {
    this.queue.close(false)
    await this.closeTransport()
  }
}
