// Bun 1.4.5's node:diagnostics_channel has no TracingChannel#hasSubscribers (Node has it, true
// when any of the channel's five parts has a subscriber). ioredis reads it before every command
// to skip its tracing when nobody listens, and takes `undefined` for "someone might": under Bun
// every command went through tracePromise, its context and a copy of its arguments as strings,
// with nobody listening (about 0.6 µs a throttled request in a profile, more per plain command).
// This gives TracingChannel the getter Node has, only where it is missing; a subscriber (an
// OpenTelemetry ioredis instrumentation, say) still sees every command.
import { tracingChannel } from 'node:diagnostics_channel'

const proto = Object.getPrototypeOf(tracingChannel('portcullis:probe')) as object
if (!('hasSubscribers' in proto)) {
  Object.defineProperty(proto, 'hasSubscribers', {
    configurable: true,
    get(this: Record<'start' | 'end' | 'asyncStart' | 'asyncEnd' | 'error', { hasSubscribers: boolean }>) {
      return (
        this.start.hasSubscribers ||
        this.end.hasSubscribers ||
        this.asyncStart.hasSubscribers ||
        this.asyncEnd.hasSubscribers ||
        this.error.hasSubscribers
      )
    },
  })
}
