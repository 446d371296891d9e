// The access log: one JSON object per request and line on stdout (or a pretty line).
import type { AccessLogEntry } from '../runtime/context.ts'

export type LogFormat = 'json' | 'pretty'

export interface LogWriter {
  write(line: string): void
  flush(): void | Promise<void>
}

// Lines are queued and written together once per tick; `flush()` on shutdown loses nothing.
export function stdoutWriter(): LogWriter {
  const writer = Bun.stdout.writer()
  let scheduled = false
  const flush = async () => {
    scheduled = false
    await writer.flush()
  }
  return {
    write(line) {
      writer.write(line)
      if (!scheduled) {
        scheduled = true
        setImmediate(() => void flush())
      }
    },
    flush,
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

export class AccessLog {
  constructor(
    private readonly writer: LogWriter,
    private readonly format: LogFormat,
  ) {}

  write(entry: AccessLogEntry): void {
    this.writer.write(this.format === 'json' ? `${JSON.stringify(entry)}\n` : pretty(entry))
  }

  flush(): void | Promise<void> {
    return this.writer.flush()
  }
}
