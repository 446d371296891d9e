// What a `sink NAME { … }` block asks for, as the checker reads it and the sink manager runs it.
// Plain data: compared by value to tell whether a reload changed a sink.
import type { AccessLogEntry } from '../../runtime/context.ts'

export type SinkTarget =
  | { kind: 'redis'; key: string; maxlen: number | null }
  | { kind: 'http'; url: string; format: 'bulk' | 'ndjson'; index: string | null; timeoutMs: number }
  | { kind: 'file'; path: string; rotate: { bytes: number } | 'daily' | null; keep: number }

export interface SinkSpec {
  name: string
  target: SinkTarget
  batch: number // entries per delivery at most
  everyMs: number // how long a partial batch may wait for more entries (0: send at once)
  queue: number // entries held in memory before they go to the spool
  spoolBytes: number // the spool's cap on disk: past it, new entries are dropped (and counted)
  backoff: { minMs: number; maxMs: number } // between failed deliveries: doubling, with jitter
}

export const SINK_DEFAULTS = Object.freeze({
  batch: 500,
  // A partial batch waits this long for more: one call per batch, so fewer calls cost less.
  httpEveryMs: 1_000,
  everyMs: 20,
  httpTimeoutMs: 10_000,
  queue: 10_000,
  spoolBytes: 256 * 1024 * 1024,
  backoff: Object.freeze({ minMs: 200, maxMs: 30_000 }),
  keep: 5,
})

// Where --spool points when it is not given: beside the gateway's working directory, so spooled
// entries survive a reboot (a temporary directory may not).
export const DEFAULT_SPOOL_DIR = './.portcullis-spool'

export function sameSpec(a: SinkSpec, b: SinkSpec): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

// What a compiled `log to NAME` holds: hand an entry over, never wait.
export interface SinkInput {
  readonly name: string
  offer(entry: AccessLogEntry): void
}
