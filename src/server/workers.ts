// `--workers N`: N serving processes share the port (SO_REUSEPORT); this primary process
// supervises them, runs the admin API and the file watcher, and tells them to reload.
import type { Subprocess } from 'bun'
import type { Metrics, MetricsSnapshot } from '../metrics/metrics.ts'

export const WORKER_ENV = 'PORTCULLIS_WORKER'

type WorkerMessage = { ready: string[] } | { metrics: MetricsSnapshot }

export class WorkerPool {
  private readonly workers = new Map<number, Subprocess>()
  private readonly snapshots = new Map<number, MetricsSnapshot>()
  private stopping = false
  private readyCount = 0
  private urls: string[] = []
  private readonly allReady = Promise.withResolvers<string[]>()

  constructor(
    private readonly count: number,
    private readonly argv: string[],
  ) {}

  start(): Promise<string[]> {
    for (let i = 0; i < this.count; i++) this.spawn()
    return this.allReady.promise
  }

  private spawn(): void {
    const proc = Bun.spawn([process.execPath, ...this.argv, '--no-watch'], {
      stdin: 'ignore',
      stdout: 'inherit',
      stderr: 'inherit',
      env: { ...process.env, [WORKER_ENV]: '1' },
      ipc: (message: WorkerMessage, child) => {
        if ('ready' in message) {
          this.urls = message.ready
          if (++this.readyCount === this.count) this.allReady.resolve(this.urls)
        } else this.snapshots.set(child.pid, message.metrics)
      },
      onExit: (child, code) => {
        this.workers.delete(child.pid)
        this.snapshots.delete(child.pid)
        if (this.stopping) return
        if (this.readyCount < this.count) return this.allReady.reject(new Error(`a worker exited with ${code} during start-up`))
        console.error(`portcullis: worker ${child.pid} exited with ${code}; starting another`)
        setTimeout(() => this.spawn(), 500)
      },
    })
    this.workers.set(proc.pid, proc)
  }

  signal(sig: NodeJS.Signals): void {
    for (const w of this.workers.values()) w.kill(sig)
  }

  addMetrics(into: Metrics): void {
    for (const s of this.snapshots.values()) into.add(s)
  }

  async stop(sig: NodeJS.Signals): Promise<void> {
    this.stopping = true
    const exits = [...this.workers.values()].map((w) => w.exited)
    this.signal(sig)
    await Promise.all(exits)
  }
}

// In a worker: report readiness and, every second, the metrics.
export function reportToPrimary(urls: string[], metrics: Metrics): void {
  process.send?.({ ready: urls })
  setInterval(() => process.send?.({ metrics: metrics.snapshot() }), 1000).unref()
}
