// After the stages: the access log line, the route's `log` stage and the metrics,
// once the response body has been delivered (so bytes_out and duration are real).
import type { AccessLog } from '../log/access-log.ts'
import { redactQuery } from '../log/access-log.ts'
import type { Metrics } from '../metrics/metrics.ts'
import type { AccessLogEntry, RequestContext } from './context.ts'
import type { EarlyFacts, RequestObserver } from './handle.ts'

const round = (ms: number) => Math.round(ms * 100) / 100

// Many requests end in the same millisecond: format its timestamp once.
let lastMs = 0
let lastIso = ''
function isoNow(): string {
  const now = Date.now()
  if (now !== lastMs) {
    lastMs = now
    lastIso = new Date(now).toISOString()
  }
  return lastIso
}

function countBytes(body: ReadableStream<Uint8Array>, done: (bytes: number) => void): ReadableStream<Uint8Array> {
  const reader = body.getReader()
  let bytes = 0
  let finished = false
  const finish = () => {
    if (!finished) {
      finished = true
      done(bytes)
    }
  }
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done: end, value } = await reader.read()
        if (end) {
          finish()
          return controller.close()
        }
        bytes += value.byteLength
        controller.enqueue(value)
      } catch (err) {
        finish()
        controller.error(err)
      }
    },
    cancel(reason) {
      finish()
      return reader.cancel(reason)
    },
  })
}

export function createObserver(log: AccessLog, metrics: Metrics): RequestObserver {
  return {
    done(facts: RequestContext | EarlyFacts, res: Response): Response {
      const ctx = 'route' in facts ? facts : null
      const finish = (bytesOut: number) => {
        const durationMs = performance.now() - facts.start
        // A client that left before its answer was delivered: nginx's 499, for the log only.
        const gone = ctx !== null && ctx.req.signal.aborted
        const code = gone ? 'client_closed' : res.headers.get('gateway-error')
        const entry: AccessLogEntry = {
          time: isoNow(),
          request_id: facts.id,
          method: facts.method,
          path: ctx ? ctx.path : (facts as EarlyFacts).path,
          query: redactQuery(facts.rawQuery),
          route: ctx ? ctx.route.id : null,
          status: gone ? 499 : res.status,
          gateway_error: code,
          app: ctx?.app ?? null,
          user: ctx?.user ?? null,
          ip: facts.ip,
          upstream: ctx?.upstream ?? null,
          upstream_status: ctx?.upstreamStatus ?? null,
          duration_ms: round(durationMs),
          upstream_ms: ctx?.upstreamMs == null ? null : round(ctx.upstreamMs),
          bytes_in: ctx ? ctx.bytesIn : 0,
          bytes_out: bytesOut,
        }
        if (ctx) for (const f of ctx.route.plan.log) f(ctx, entry)
        log.write(entry)
        metrics.request(
          entry.route as string | null,
          entry.status as number,
          code,
          durationMs / 1000,
          ctx?.upstream ?? null,
          ctx?.upstreamMs == null ? null : ctx.upstreamMs / 1000,
        )
      }
      const length = res.headers.get('content-length')
      if (facts.method === 'HEAD' || !res.body || length !== null) {
        // A HEAD answer sends headers only, whatever its Content-Length says.
        finish(length === null || facts.method === 'HEAD' ? 0 : Number(length))
        return res
      }
      return new Response(countBytes(res.body, finish), { status: res.status, statusText: res.statusText, headers: res.headers })
    },
  }
}
