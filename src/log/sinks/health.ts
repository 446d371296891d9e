// How one sink is doing: delivering or failing (said once, then every minute), room left or
// not, the counts /metrics shows, and the backoff between failed deliveries.
import { sinkEvent } from './events.ts'

export type DropReason = 'spool_full' | 'queue_full' | 'rejected' | 'unserializable' | 'stopped'
export const DROP_REASONS: readonly DropReason[] = ['spool_full', 'queue_full', 'rejected', 'unserializable', 'stopped']

const REMIND_MS = 60_000 // a sink that stays down is reported again this often

export class SinkHealth {
  down = false
  full = false // no room left: new entries are dropped
  delivered = 0
  errors = 0 // failed delivery attempts
  readonly dropped: Record<DropReason, number> = { spool_full: 0, queue_full: 0, rejected: 0, unserializable: 0, stopped: 0 }
  private downSince = 0
  private remindedAt = 0
  private attempt = 0

  constructor(private readonly sink: () => string) {}

  // A delivery failed in whole or in part; `where` is the transport's description, if known.
  failing(why: string, where: string): void {
    this.errors++
    const now = performance.now()
    if (!this.down) {
      this.down = true
      this.downSince = now
      this.remindedAt = now
      const to = where ? ` to ${where}` : ''
      sinkEvent('warn', this.sink(), `delivery${to} failed: ${why}; entries wait in the spool and are sent again`, { error: why })
    } else if (now - this.remindedAt >= REMIND_MS) {
      this.remindedAt = now
      sinkEvent('warn', this.sink(), `still failing after ${Math.round((now - this.downSince) / 1000)}s: ${why}`, { error: why })
    }
  }

  working(): void {
    this.attempt = 0
    if (!this.down) return
    this.down = false
    sinkEvent('info', this.sink(), `delivering again after ${Math.round((performance.now() - this.downSince) / 100) / 10}s`)
  }

  drop(reason: DropReason, n: number): void {
    this.dropped[reason] += n
    if (reason === 'rejected') sinkEvent('warn', this.sink(), `${n} entries refused for good by the receiver; dropped`, { dropped: n })
  }

  // No room left (the spool is at its cap, or unusable with the queue full), or room again.
  noRoom(full: boolean, why = '', capBytes = 0): void {
    if (full === this.full) return
    this.full = full
    if (full) sinkEvent('error', this.sink(), `${why}: new entries are dropped until it drains`, { spool_bytes: capBytes })
    else sinkEvent('info', this.sink(), 'the spool has room again')
  }

  // Doubling from the shortest wait to the longest, each drawn from its upper half (jitter), so
  // gateways that lost the same receiver do not all come back at once.
  backoff(minMs: number, maxMs: number): number {
    const base = Math.min(maxMs, minMs * 2 ** Math.min(this.attempt++, 30))
    return base / 2 + (Math.random() * base) / 2
  }
}
