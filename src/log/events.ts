// The gateway's own events (start, reloads, upstream health, store and sink trouble) on
// stderr: JSON lines with `time`, `level`, `event` and `message` under `--log-format json`,
// `portcullis: message` lines under `pretty`. The access log is elsewhere (stdout).
export type EventLevel = 'info' | 'warn' | 'error'
export type EventFormat = 'json' | 'pretty'

export interface EventSink {
  write(line: string): void
}

const stderr: EventSink = { write: (line) => void process.stderr.write(line) }

let format: EventFormat = 'pretty'
let sink: EventSink = stderr

// Set once at start-up, from --log-format (the access log's format). Tests may pass a sink.
export function configureEvents(f: EventFormat, to: EventSink = stderr): void {
  format = f
  sink = to
}

// One event. `fields` are extra JSON members (plain data: names, numbers, lists); the message
// alone must read well, as it is all the pretty format shows.
export function event(name: string, message: string, fields?: Record<string, unknown>, level: EventLevel = 'info'): void {
  if (format === 'pretty') return sink.write(`portcullis: ${message}\n`)
  let line: string
  try {
    line = JSON.stringify({ time: new Date().toISOString(), level, event: name, message, ...fields })
  } catch {
    line = JSON.stringify({ time: new Date().toISOString(), level, event: name, message })
  }
  sink.write(`${line}\n`)
}

export const warn = (name: string, message: string, fields?: Record<string, unknown>) => event(name, message, fields, 'warn')
export const failure = (name: string, message: string, fields?: Record<string, unknown>) => event(name, message, fields, 'error')
