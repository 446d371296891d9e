// `--workers N`: N serving processes share the port (SO_REUSEPORT); this primary process
// supervises them, runs the admin API and the file watcher, and tells them to reload.
import type { Subprocess } from 'bun'
import type { Metrics, MetricsSnapshot } from '../metrics/metrics.ts'
import type { SinkManager } from '../log/sinks/manager.ts'
import type { SinkStatus } from '../log/sinks/sink.ts'
import { event, warn } from '../log/events.ts'

export const WORKER_ENV = 'PORTCULLIS_WORKER'

type WorkerMessage = { ready: string[] } | { metrics: MetricsSnapshot; sinks?: SinkStatus[] }

export interface BackoffPolicy {
  firstMs: number
  maxMs: number
  stableMs: number // a worker that ran this long was healthy: the next delay starts over
}

export const RESTART_BACKOFF: BackoffPolicy = Object.freeze({ firstMs: 500, maxMs: 30_000, stableMs: 10_000 })

// The delay before restarting a slot's worker doubles while its workers keep dying young,
// so a worker that cannot start (bad policies, a missing file) is not respawned twice a second.
export class Backoff {
  private nextMs: number

  constructor(private readonly policy: BackoffPolicy = RESTART_BACKOFF) {
    this.nextMs = policy.firstMs
  }

  delayAfter(ranMs: number): number {
    if (ranMs >= this.policy.stableMs) this.nextMs = this.policy.firstMs
    const delay = this.nextMs
    this.nextMs = Math.min(this.nextMs * 2, this.policy.maxMs)
    return delay
  }
}

interface Slot {
  proc: Subprocess | null
  startedAt: number
  backoff: Backoff
  restart: ReturnType<typeof setTimeout> | null
}

const seconds = (ms: number) => `${Math.round(ms / 100) / 10}s`

export class WorkerPool {
  private readonly slots: Slot[]
  private readonly snapshots = new Map<number, MetricsSnapshot>()
  private readonly sinks = new Map<number, SinkStatus[]>()
  private stopping = false
  private readyCount = 0
  private started = false
  private urls: string[] = []
  private readonly allReady = Promise.withResolvers<string[]>()

  constructor(
    private readonly count: number,
    private readonly argv: string[],
  ) {
    this.slots = Array.from({ length: count }, () => ({ proc: null, startedAt: 0, backoff: new Backoff(), restart: null }))
  }

  start(): Promise<string[]> {
    for (const slot of this.slots) this.spawn(slot)
    return this.allReady.promise
  }

  private spawn(slot: Slot): void {
    slot.restart = null
    if (this.stopping) return
    slot.startedAt = Date.now()
    slot.proc = Bun.spawn([process.execPath, ...this.argv, '--no-watch'], {
      stdin: 'ignore',
      stdout: 'inherit',
      stderr: 'inherit',
      env: { ...process.env, [WORKER_ENV]: '1' },
      ipc: (message: WorkerMessage, child) => {
        if ('ready' in message) {
          this.urls = message.ready
          if (++this.readyCount === this.count) {
            this.started = true
            this.allReady.resolve(this.urls)
          }
        } else {
          this.snapshots.set(child.pid, message.metrics)
          if (message.sinks) this.sinks.set(child.pid, message.sinks)
        }
      },
      onExit: (child, code, signal) => {
        if (slot.proc === child) slot.proc = null
        this.snapshots.delete(child.pid)
        this.sinks.delete(child.pid)
        if (this.stopping) return
        const how = signal ? `was killed by ${signal}` : `exited with ${code}`
        // At start-up a worker that dies is a configuration problem: stop with it.
        if (!this.started) return this.allReady.reject(new Error(`worker ${child.pid} ${how} during start-up`))
        const ranMs = Date.now() - slot.startedAt
        const delay = slot.backoff.delayAfter(ranMs)
        warn('worker', `worker ${child.pid} ${how} after ${seconds(ranMs)}; restarting it in ${seconds(delay)}`, {
          pid: child.pid,
          restart_in_ms: delay,
        })
        slot.restart = setTimeout(() => this.spawn(slot), delay)
      },
    })
    event('worker', `started worker ${slot.proc.pid}`, { pid: slot.proc.pid })
  }

  private get live(): Subprocess[] {
    return this.slots.flatMap((s) => (s.proc ? [s.proc] : []))
  }

  signal(sig: NodeJS.Signals): void {
    for (const w of this.live) w.kill(sig)
  }

  addMetrics(into: Metrics): void {
    for (const s of this.snapshots.values()) into.add(s)
  }

  // The workers' sinks as they last reported them (each worker has its own queues and spool).
  sinkStatuses(): SinkStatus[] {
    return [...this.sinks.values()].flat()
  }

  async stop(sig: NodeJS.Signals): Promise<void> {
    this.stopping = true
    for (const slot of this.slots) if (slot.restart) clearTimeout(slot.restart)
    const exits = this.live.map((w) => w.exited)
    this.signal(sig)
    await Promise.all(exits)
  }
}

// In a worker: report readiness and, every second, the metrics and the sinks' state.
export function reportToPrimary(urls: string[], metrics: Metrics, sinks?: SinkManager): void {
  process.send?.({ ready: urls })
  setInterval(() => process.send?.({ metrics: metrics.snapshot(), sinks: sinks?.statuses() }), 1000).unref()
}
