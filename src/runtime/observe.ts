// After the stages: the access log line, the route's `log` stage and the metrics,
// once the response body has been delivered (so bytes_out and duration are real).
import type { AccessLog } from '../log/access-log.ts'
import { redactQuery } from '../log/access-log.ts'
import type { Metrics } from '../metrics/metrics.ts'
import type { AccessLogEntry, RequestContext } from './context.ts'
import type { EarlyFacts, RequestObserver } from './handle.ts'

const round = (ms: number) => Math.round(ms * 100) / 100

// Many requests end in the same millisecond: format its timestamp once. The wall clock is
// read again once performance.now() (which the duration needs anyway, and is cheaper than
// Date.now()) says a millisecond has passed since: a time is at most a millisecond older
// than Date.now() would have said.
let sampledAt = -Infinity
let lastIso = ''
function isoAt(now: number): string {
  if (now - sampledAt >= 1) {
    sampledAt = now
    lastIso = new Date().toISOString()
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
  const unrouted = metrics.routeSeries(null)

  function record(facts: RequestContext | EarlyFacts, ctx: RequestContext | null, res: Response, bytesOut: number): void {
    const now = performance.now()
    const durationMs = now - facts.start
    // A client that left before its answer was delivered: nginx's 499, for the log only.
    const gone = ctx !== null && ctx.req.signal.aborted
    // An answer cut after its head (an upstream that stalled) keeps its status; the code says why.
    const code = gone ? 'client_closed' : ((ctx !== null ? ctx.gatewayError : null) ?? res.headers.get('gateway-error'))
    const status = gone ? 499 : ctx !== null && ctx.upgraded ? 101 : res.status
    const upstream = ctx === null ? null : (ctx.upstream ?? null)
    const upstreamMs = ctx === null ? null : (ctx.upstreamMs ?? null)
    const entry: AccessLogEntry = {
      time: isoAt(now),
      request_id: facts.id,
      method: facts.method,
      path: facts.path,
      query: redactQuery(facts.rawQuery),
      route: ctx === null ? null : ctx.route.id,
      status,
      gateway_error: code,
      app: ctx === null ? null : (ctx.identity?.app?.name ?? null),
      user: ctx === null ? null : (ctx.identity?.user?.id ?? null),
      ip: facts.ip,
      upstream,
      upstream_status: ctx === null ? null : (ctx.upstreamStatus ?? null),
      duration_ms: round(durationMs),
      upstream_ms: upstreamMs === null ? null : round(upstreamMs),
      bytes_in: ctx === null ? 0 : ctx.bytesIn,
      bytes_out: bytesOut,
      // Set by tracing. Part of the object from the start (undefined is left out of the line):
      // a field added later made every traced line's JSON.stringify a third slower.
      trace_id: undefined,
    }
    if (ctx !== null) {
      const fns = ctx.route.plan.log
      for (let i = 0; i < fns.length; i++) fns[i]!(ctx, entry)
      // Tracing on: the request's span ends with what the log says (and the log gets trace_id).
      if (ctx.trace) ctx.trace.end(entry)
    }
    log.write(entry)
    // Read back from the entry, as a `log` stage function may have changed them.
    const route = entry.route as string | null
    const series = route === null ? unrouted : metrics.routeSeries(route)
    series.record(entry.status as number, code, durationMs / 1000, upstream, upstreamMs === null ? null : upstreamMs / 1000)
    if (code === 'unauthenticated' || code === 'forbidden')
      metrics.incLabelled('gateway_auth_failures_by_app_total', { route: route ?? '', app: (entry.app as string | null) ?? '', code })
    if (ctx !== null && ctx.cacheLookup) metrics.incLabelled('gateway_cache_lookups_total', { route: route ?? '', result: ctx.cacheLookup })
    const limit = ctx === null ? null : ctx.limit
    if (limit)
      metrics.incLabelled('gateway_rate_limit_decisions_total', {
        route: route ?? '',
        app: (entry.app as string | null) ?? '',
        tier: limit.tier ?? '',
        result: limit.result,
      })
  }

  return {
    done(facts: RequestContext | EarlyFacts, res: Response): Response {
      const ctx = 'route' in facts ? facts : null
      if (ctx !== null && ctx.bytesOut !== null) {
        // The proxy counts its answers' bodies: no wrapper, the line is written when it ends.
        if (!ctx.bodyPending) record(facts, ctx, res, ctx.bytesOut)
        else ctx.onBodyEnd = () => record(facts, ctx, res, ctx.bytesOut ?? 0)
        return res
      }
      if (ctx !== null && ctx.bodyPending) {
        ctx.onBodyEnd = () => record(facts, ctx, res, ctx.bytesOut ?? 0)
        return res
      }
      const length = res.headers.get('content-length')
      // (res.body last: reading it makes a stream of a body that has none yet.)
      if (facts.method === 'HEAD' || length !== null || !res.body) {
        // A HEAD answer sends headers only, whatever its Content-Length says.
        record(facts, ctx, res, length === null || facts.method === 'HEAD' ? 0 : Number(length))
        return res
      }
      const counted = countBytes(res.body, (bytesOut) => record(facts, ctx, res, bytesOut))
      return new Response(counted, { status: res.status, statusText: res.statusText, headers: res.headers })
    },
  }
}
