// The sinks' gateway events (stderr, in the --log-format of the gateway's other events): one
// function, so every sink message reads `sink NAME: …` and carries the sink's name.
import { event, failure, warn } from '../events.ts'

export type SinkEventLevel = 'info' | 'warn' | 'error'

export function sinkEvent(level: SinkEventLevel, sink: string, message: string, fields: Record<string, unknown> = {}): void {
  const say = level === 'error' ? failure : level === 'warn' ? warn : event
  say('sink', `sink ${sink}: ${message}`, { sink, ...fields })
}
