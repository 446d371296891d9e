// `trace off` / `trace sample N%`: a route's own tracing, beside the gateway's settings
// (--otlp-endpoint, --trace-sample, OTEL_TRACES_SAMPLER). `off`: the route's requests are not
// traced (no span, no ids; the client's traceparent and tracestate go upstream as sent), for
// health checks and other chatter. `sample`: its new traces are recorded at this rate instead
// of the gateway's (a caller's sampled flag still decides under the parent-based samplers).
// With tracing off (no endpoint) neither has anything to do.
import { sampledAt, TRACE_OFF } from '../runtime/route-tracing.ts'
import { defineDirective } from './define.ts'

type TraceConfig = { off: true } | { off: false; ratio: number; text: string }

export default defineDirective<TraceConfig, 'log'>({
  name: 'trace',
  stage: 'log',
  places: ['route', 'defaults'],
  once: true,
  usage: 'trace off | sample N%',
  summary:
    "The route's own tracing: `off` (no span; the client's trace context passed on as sent), or `sample 5%`: its new traces recorded at that rate instead of the gateway's `--trace-sample`.",
  describe: (cfg) => (cfg.off ? 'trace off' : `trace sample ${cfg.text}`),
  read(a) {
    const mode = a.oneOf(['off', 'sample'] as const, 'a mode')
    if (mode === undefined) return undefined
    if (mode === 'off') {
      a.end()
      return { off: true }
    }
    // A percentage, as `proxy split` shares are; a ratio as the flag writes it gets the hint.
    const n = a.peek()
    if (n && (n.kind === 'number' || n.kind === 'malformed') && /^\d+(\.\d+)?$/.test(n.text)) {
      const ratio = Number(n.text)
      const as = ratio <= 1 ? `${Number((ratio * 100).toFixed(6))}%` : `${n.text}%`
      return a.fail('bad-argument', `a sample rate is a percentage: write ${as}`, n.span)
    }
    const p = a.expect(['percent'], 'a percentage like 5%')
    if (!p) return undefined
    const ratio = Number(p.text.slice(0, -1)) / 100
    if (ratio > 1) return a.fail('bad-argument', `a sample rate is at most 100%, found ${p.text}`, p.span)
    a.end()
    return { off: false, ratio, text: p.text }
  },
  compile(cfg, ctx) {
    ctx.tracing(cfg.off ? TRACE_OFF : sampledAt(cfg.ratio))
    // Nothing runs in the log stage: the tracing observer reads the route's setting.
    return null
  },
})
