// The access log: one JSON object per request and line on stdout (or a pretty line).
import { writeSync } from 'node:fs'
import type { AccessLogEntry } from '../runtime/context.ts'

export type LogFormat = 'json' | 'pretty'

export interface LogWriter {
  write(line: string): void
  flush(): void | Promise<void>
}

// Where batches go: Bun's FileSink (Bun.stdout.writer()) has this shape.
export interface LogSink {
  write(chunk: string): unknown
  flush(): unknown
}

const BATCH_CHARS = 64 * 1024
// How long a line may wait for the lines after it (nginx's `access_log … buffer= flush=`, here
// short): under load one write carries a few hundred lines instead of the few of one turn.
export const LOG_FLUSH_MS = 10

// Lines are joined in one string and handed to the sink every LOG_FLUSH_MS (or at
// BATCH_CHARS): one write call and one system call per batch, not per line. `flush()` on
// shutdown loses nothing; on an exit without it (a crash), stdout's batch is written synchronously.
export function stdoutWriter(to?: LogSink, flushMs = LOG_FLUSH_MS): LogWriter {
  const sink = to ?? Bun.stdout.writer()
  let batch = ''
  let timer: ReturnType<typeof setTimeout> | null = null
  const drain = () => {
    if (timer !== null) {
      clearTimeout(timer)
      timer = null
    }
    if (batch === '') return
    const chunk = batch
    batch = ''
    sink.write(chunk)
    void sink.flush()
  }
  if (to === undefined) {
    process.once('exit', () => {
      if (batch === '') return
      try {
        writeSync(1, batch)
      } catch {}
      batch = ''
    })
  }
  return {
    write(line) {
      batch += line
      if (batch.length >= BATCH_CHARS) drain()
      else if (timer === null) timer = setTimeout(drain, flushMs)
    },
    async flush() {
      drain()
      await sink.flush()
    },
  }
}

const SENSITIVE = /token|key|secret|password|signature|sig|code|auth/i

export function redactQuery(raw: string): string {
  // Percent-encoded names (`%74oken`) must be decoded before they can be judged.
  if (!raw || (!SENSITIVE.test(raw) && !raw.includes('%'))) return raw
  return raw
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=')
      const name = eq === -1 ? pair : pair.slice(0, eq)
      let decoded = name
      try {
        decoded = decodeURIComponent(name.replace(/\+/g, ' '))
      } catch {}
      return SENSITIVE.test(decoded) ? `${name}=[redacted]` : pair
    })
    .join('&')
}

function pretty(e: AccessLogEntry): string {
  const err = e.gateway_error ? ` ${e.gateway_error}` : ''
  const up = e.upstream ? ` -> ${e.upstream} ${e.upstream_status ?? '-'} ${e.upstream_ms ?? '-'}ms` : ''
  return `${e.time} ${e.status}${err} ${e.method} ${e.path}${e.query ? `?${e.query}` : ''} [${e.route ?? 'no route'}] ${e.ip} ${e.duration_ms}ms${up} id=${e.request_id}\n`
}

// JSON.stringify, not a hand-written serializer: Bun's JSON.stringify has a native fast path
// for flat objects of strings, numbers and null, and measured faster than building the line
// from template pieces (each piece is a rope to flatten). It also keeps whatever a route's
// `log` stage added to the entry.
const jsonLine = (e: AccessLogEntry): string => `${JSON.stringify(e)}\n`

// Entries a `log to` sink took: the JSON line written to stdout is kept for them, so the sink
// need not make it again. (Nothing is looked up before the first sink takes one; a property on
// the entry instead would put JSON.stringify on its slow path.)
const keptLines = new WeakMap<AccessLogEntry, string | null>()
let keeping = false
export function keepLine(entry: AccessLogEntry): void {
  keeping = true
  keptLines.set(entry, null)
}
export function keptLine(entry: AccessLogEntry): string | null | undefined {
  return keptLines.get(entry)
}

export class AccessLog {
  private readonly line: (e: AccessLogEntry) => string

  constructor(
    private readonly writer: LogWriter,
    format: LogFormat,
  ) {
    this.line = format === 'json' ? jsonLine : pretty
  }

  write(entry: AccessLogEntry): void {
    const line = this.line(entry)
    this.writer.write(line)
    if (keeping && this.line === jsonLine && keptLines.has(entry)) keptLines.set(entry, line)
  }

  flush(): void | Promise<void> {
    return this.writer.flush()
  }
}
