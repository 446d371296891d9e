// A route's own tracing (`trace off`, `trace sample RATIO`), fixed when the program is built and
// read by the tracing observer as a request begins. Free of the OpenTelemetry packages, which
// load only when tracing is on.

export interface RouteTracing {
  // Not traced: no span, no ids; the client's traceparent and tracestate go upstream as sent.
  readonly off: boolean
  // The share of new traces recorded on this route (replacing the gateway's ratio), as its
  // bound on a trace id's words (ratioBound); null with `off`.
  readonly bound: number | null
}

// The OpenTelemetry TraceIdRatioBasedSampler's bound: a trace is recorded when the XOR of its
// id's four 32-bit words is below it (src/trace/decide.ts).
export function ratioBound(ratio: number): number {
  return ratio >= 1 ? 4294967296 : ratio > 0 ? Math.floor(ratio * 4294967295) : 0
}

export const TRACE_OFF: RouteTracing = Object.freeze({ off: true, bound: null })

export function sampledAt(ratio: number): RouteTracing {
  return Object.freeze({ off: false, bound: ratioBound(ratio) })
}
