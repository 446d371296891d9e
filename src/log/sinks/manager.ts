// The sinks of one gateway process. They outlive programs: a reload hands the same sink (by
// name) to the new program, so nothing queued or spooled is lost or sent twice, and bodies
// still streaming from the old program log into it. A changed target takes effect at the
// next delivery (what is still queued goes to the new target). A sink no program uses any
// more delivers what it holds, then closes.
import { join } from 'node:path'
import { fileTransport } from './file-sink.ts'
import { httpTransport } from './http-bulk.ts'
import { Sink, type SinkStatus } from './sink.ts'
import { sameSpec, type SinkInput, type SinkSpec, type SinkTarget } from './spec.ts'
import type { Transport } from './transport.ts'

export interface SinkManagerOptions {
  spoolDir: string // --spool: one directory per sink under it
  redisUrl: string | null // --redis: where `redis stream` sinks write
  // A serving gateway: spooled entries left by an earlier run are delivered from the start.
  // Otherwise (`gateway check`, in-process tests) a sink does nothing until an entry comes.
  live: boolean
}

export interface SinkUse {
  input: SinkInput
  release(): void
}

export class SinkManager {
  private readonly sinks = new Map<string, Sink>()

  constructor(readonly opts: SinkManagerOptions) {}

  get hasRedis(): boolean {
    return this.opts.redisUrl !== null
  }

  // Each program takes the sinks it logs to and releases them when it is disposed.
  acquire(spec: SinkSpec): SinkUse {
    let sink = this.sinks.get(spec.name)
    if (!sink) {
      sink = new Sink(spec, { spoolDir: join(this.opts.spoolDir, spec.name), openTransport: (t) => this.openTransport(t) })
      this.sinks.set(spec.name, sink)
      if (this.opts.live) sink.start()
    } else if (!sameSpec(sink.spec, spec)) sink.configure(spec)
    sink.refs++
    sink.revive()
    const s = sink
    let released = false
    return {
      input: s,
      release() {
        if (released) return
        released = true
        if (--s.refs === 0) s.retire()
      },
    }
  }

  private async openTransport(t: SinkTarget): Promise<Transport> {
    switch (t.kind) {
      case 'redis': {
        if (this.opts.redisUrl === null) throw new Error('no Redis to write the stream to: start the gateway with --redis URL')
        // ioredis is loaded only when a stream sink is used.
        const { redisStreamTransport } = await import('./redis-stream.ts')
        return redisStreamTransport(this.opts.redisUrl, t.key, t.maxlen)
      }
      case 'http':
        return httpTransport(t.url, t.format, t.index, t.timeoutMs)
      case 'file':
        return fileTransport(t.path, t.rotate, t.keep)
    }
  }

  // SIGUSR1: file sinks open their paths again.
  reopen(): void {
    for (const s of this.sinks.values()) s.reopen()
  }

  // Only a serving process's sinks carry entries (the --workers primary's stay idle: its
  // /metrics adds up the workers').
  statuses(): SinkStatus[] {
    return this.opts.live ? [...this.sinks.values()].map((s) => s.status()) : []
  }

  // Shutdown: what a sink cannot take in a moment goes to its spool.
  async close(): Promise<void> {
    await Promise.all([...this.sinks.values()].map((s) => s.stop()))
  }
}
