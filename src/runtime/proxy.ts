// Forwarding one request to an upstream: bytes untouched both ways, tries spread over the
// pool's targets with back-off inside one deadline, each outcome reported for passive health.
import { UpstreamFailure, type FailureKind, type Timeouts } from './client/client.ts'
import { exchange } from './client/socket-client.ts'
import type { RequestContext } from './context.ts'
import { GatewayError } from './gateway-error.ts'
import { joined, readUpTo } from './body.ts'
import type { RetryPolicy, Target, UpstreamPool } from './upstream.ts'

// A request that may be sent again is kept in memory; without `limit body` at most this much.
// A longer body is streamed once, without retries (as Envoy does past its buffer limit).
const RETRY_BODY_CAP = 1024 * 1024
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])
const BACKOFF_BASE_MS = 25
const BACKOFF_CAP_MS = 250

export function upstreamTarget(target: Target, ctx: RequestContext): string {
  const query = ctx.upstreamQuery === null ? ctx.rawQuery : ctx.upstreamQuery
  return query ? `${target.basePath}${ctx.upstreamPath}?${query}` : `${target.basePath}${ctx.upstreamPath}`
}

type Body = ReadableStream<Uint8Array> | Uint8Array | null

// Reads the body for a request that may be retried: whole when it fits `cap`, else the part
// read so far followed by the rest as one stream (no retries then).
async function keepForRetry(body: ReadableStream<Uint8Array>, cap: number, limit: number, ctx: RequestContext): Promise<Body> {
  const reader = body.getReader()
  let read
  try {
    read = await readUpTo(reader, cap)
  } catch {
    throw new GatewayError('bad_request', 'the request body could not be read')
  }
  if (read.total > limit) {
    void reader.cancel().catch(() => {})
    ctx.body = 'abandoned'
    throw new GatewayError('payload_too_large', `the request body is larger than ${limit} bytes`)
  }
  if (read.ended) {
    ctx.bytesIn = read.total
    return joined(read.parts)
  }
  const parts = read.parts
  return new ReadableStream<Uint8Array>({
    start(c) {
      for (const p of parts) c.enqueue(p)
    },
    async pull(c) {
      const { done, value } = await reader.read()
      if (done) c.close()
      else c.enqueue(value)
    },
    cancel: (reason) => reader.cancel(reason),
  })
}

const NOT_REPORTED: ReadonlySet<FailureKind> = new Set(['too_large', 'client_body'])

function failureError(f: UpstreamFailure, ctx: RequestContext, pool: UpstreamPool, t: Timeouts): GatewayError {
  switch (f.kind) {
    case 'too_large':
      ctx.body = 'abandoned'
      return new GatewayError('payload_too_large', `the request body is larger than ${ctx.bodyLimit} bytes`)
    case 'client_body':
      ctx.body = 'abandoned'
      return new GatewayError('bad_request', 'the request body could not be read')
    case 'connect_timeout':
      return new GatewayError('upstream_timeout', `upstream ${pool.name} did not accept a connection within ${t.connectMs} ms`)
    case 'timeout':
      return new GatewayError('upstream_timeout', `upstream ${pool.name} did not answer within ${t.headersMs} ms`)
    case 'connect':
      return new GatewayError('bad_gateway', `upstream ${pool.name} could not be reached`)
    default:
      return new GatewayError('bad_gateway', `upstream ${pool.name} failed: ${f.message}`)
  }
}

function retriable(f: UpstreamFailure, on: RetryPolicy['on']): boolean {
  if (f.kind === 'connect' || f.kind === 'connect_timeout') return on.connectError
  if (f.kind === 'timeout') return on.timeout
  if (f.kind === 'reset' || f.kind === 'protocol') return on.connectError && f.beforeAnswer
  return false
}

const FAILED_STATUS = new Set([502, 503, 504])

export async function proxyTo(ctx: RequestContext, pool: UpstreamPool, timeouts: Timeouts): Promise<Response> {
  const req = ctx.req
  const method = ctx.method
  if (ctx.upgrade) throw new GatewayError('bad_request', 'this route does not accept WebSocket or other protocol upgrades')
  const retry = pool.retry && (IDEMPOTENT.has(method) || pool.retryUnsafe) ? pool.retry : null
  const limit = ctx.bodyLimit ?? Infinity
  const chunked = req.headers.has('transfer-encoding')
  const declared = req.headers.get('content-length')
  const length = chunked || declared === null ? null : Number(declared)
  // Bun.serve reads a GET or HEAD body off the connection and drops it: refuse rather than
  // send the upstream a request without the body it was meant to carry.
  if (ctx.body === 'none' && (chunked || (length ?? 0) > 0)) {
    throw new GatewayError('bad_request', `a ${method} request body cannot be forwarded: the listener drops GET and HEAD bodies`)
  }
  let body: Body = ctx.body === 'none' ? null : (ctx.bufferedBody ?? req.body)
  if (body instanceof ReadableStream && retry) body = await keepForRetry(body, Math.min(limit, RETRY_BODY_CAP), limit, ctx)
  if (body) ctx.body = 'forwarding'
  const again = retry !== null && !(body instanceof ReadableStream)
  // A body the gateway read whole may have been replaced (`decrypt request`): it goes with its
  // own Content-Length, never the client's.
  const own = body !== null && body === ctx.bufferedBody && body.byteLength !== length
  const headerLines = own ? withoutContentLength(ctx.upstreamHeaderLines()) : ctx.upstreamHeaderLines()
  const replayable = IDEMPOTENT.has(method) || req.headers.has('idempotency-key')
  const started = performance.now()
  const deadline = started + (retry?.withinMs ?? timeouts.headersMs)
  const tried = again ? new Set<Target>() : undefined
  // A route that sets or removes traceparent/tracestate itself has its way: the tries' spans
  // are still recorded, but do not name themselves upstream.
  const trace = ctx.trace ?? null
  const sendsTrace = trace !== null && !ctx.route.ownsTraceContext
  for (let attempt = 0; ; attempt++) {
    const target = pool.next(tried)
    tried?.add(target)
    ctx.upstream = target.origin
    const last = !again || attempt >= retry!.count
    const left = deadline - performance.now()
    const tryTimeouts = again ? { ...timeouts, headersMs: Math.max(1, Math.min(timeouts.headersMs, left)) } : timeouts
    target.state.active++
    target.state.attempts++
    if (attempt > 0) target.state.retries++
    let failure: UpstreamFailure
    // Tracing on: each try has its span, named in the traceparent this try sends.
    const span = trace === null ? null : trace.attempt(pool.name, target.conn, attempt)
    try {
      const result = await exchange({
        origin: target.conn,
        method,
        target: upstreamTarget(target, ctx),
        headerLines: span === null || !sendsTrace ? headerLines : headerLines + span.headerLines,
        body,
        length: own ? null : length,
        bodyLimit: limit,
        replayable,
        timeouts: tryTimeouts,
        // (The access stage's headers are set on the Response after, in handle.ts: measured
        // cheaper than making the Response with five more fields.)
        requestId: ctx.id,
        onBodyEnd(bytesOut, failed, bytesIn) {
          target.state.active--
          span?.bodyEnded(failed)
          ctx.bytesOut = bytesOut
          ctx.bytesIn = bytesIn
          if (failed === 'timeout') ctx.gatewayError = 'upstream_timeout'
          else if (failed !== null && failed !== 'cancelled') ctx.gatewayError = 'bad_gateway'
          if (ctx.bodyPending) {
            ctx.bodyPending = false
            ctx.onBodyEnd?.()
          }
        },
      })
      const res = result.response
      span?.answered(res.status)
      ctx.idSent = true
      if (!result.ended()) ctx.bodyPending = true
      ctx.upstreamMs = performance.now() - started
      ctx.upstreamStatus = res.status
      ctx.bytesIn = result.bytesIn()
      if (result.bodyAbandoned()) ctx.body = 'abandoned'
      const failedStatus = FAILED_STATUS.has(res.status)
      if (failedStatus) target.state.failures++
      pool.report(target, failedStatus)
      if (!last && retry!.on.statuses.includes(res.status) && (await backoff(attempt, deadline))) {
        ctx.bodyPending = false
        await res.body?.cancel()
        continue
      }
      return res
    } catch (err) {
      target.state.active--
      if (!(err instanceof UpstreamFailure)) throw err
      failure = err
      span?.failed(failure.kind, failure.message)
    }
    ctx.upstreamMs = performance.now() - started
    if (!NOT_REPORTED.has(failure.kind)) {
      target.state.failures++
      pool.report(target, true)
    }
    if (!last && retriable(failure, retry!.on) && (await backoff(attempt, deadline))) continue
    throw failureError(failure, ctx, pool, tryTimeouts)
  }
}

const CONTENT_LENGTH_LINE = /(^|\n)content-length:[^\r\n]*\r\n/i

function withoutContentLength(lines: string): string {
  return lines.replace(CONTENT_LENGTH_LINE, '$1')
}

// Full jitter (AWS): a random wait up to an exponentially growing cap; false when the wait
// would pass the deadline, so the last answer stands.
async function backoff(attempt: number, deadline: number): Promise<boolean> {
  const wait = Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt)
  if (performance.now() + wait >= deadline) return false
  await Bun.sleep(wait)
  return true
}
