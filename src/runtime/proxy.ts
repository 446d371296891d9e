// Forwarding one request to an upstream target: streamed both ways, bytes untouched.
import type { RequestContext } from './context.ts'
import { GatewayError } from './gateway-error.ts'
import { stripResponseHeaders } from './headers.ts'
import type { Target, UpstreamPool } from './upstream.ts'

const NO_BODY = new Set(['GET', 'HEAD'])

export function upstreamUrl(base: string, ctx: RequestContext): string {
  const query = ctx.upstreamQuery === null ? ctx.rawQuery : ctx.upstreamQuery.toString()
  return query ? `${base}${ctx.upstreamPath}?${query}` : `${base}${ctx.upstreamPath}`
}

// Counts request body bytes; past the limit the stream errors and the proxy answers 413.
function limitedBody(body: ReadableStream<Uint8Array>, ctx: RequestContext, limit: number): ReadableStream<Uint8Array> {
  const reader = body.getReader()
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read()
      if (done) return controller.close()
      ctx.bytesIn += value.byteLength
      if (ctx.bytesIn > limit) {
        ctx.bodyLimitExceeded = true
        await reader.cancel()
        return controller.error(new Error('request body over the limit'))
      }
      controller.enqueue(value)
    },
    cancel: (reason) => reader.cancel(reason),
  })
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])

function fetchFailed(ctx: RequestContext, err: unknown): 'timeout' | 'connect' {
  if (ctx.bodyLimitExceeded) throw new GatewayError('payload_too_large', `the request body is larger than ${ctx.bodyLimit} bytes`)
  const name = (err as { name?: string }).name
  return name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'connect'
}

export async function proxyTo(ctx: RequestContext, pool: UpstreamPool, timeoutMs: number): Promise<Response> {
  const req = ctx.req
  const hasBody = !NO_BODY.has(ctx.method) && req.body !== null
  const retry = pool.retry && (IDEMPOTENT.has(ctx.method) || pool.retryUnsafe) ? pool.retry : null
  // Always counted (bytes_in of the access log); limited when the route sets `limit body`.
  let body: ReadableStream<Uint8Array> | Uint8Array | null = hasBody ? limitedBody(req.body!, ctx, ctx.bodyLimit ?? Infinity) : null
  if (!hasBody) ctx.bytesIn = Number(req.headers.get('content-length') ?? 0)
  // A request that may be sent again must be kept whole: its body is read once, within the limit.
  if (retry && body) {
    try {
      body = new Uint8Array(await new Response(body).arrayBuffer())
    } catch (err) {
      fetchFailed(ctx, err)
      throw new GatewayError('bad_request', 'the request body could not be read')
    }
  }
  const tried = new Set<Target>()
  const started = performance.now()
  for (let attempt = 0; ; attempt++) {
    const target = pool.next(tried)
    if (!target) throw new GatewayError('upstream_unavailable', `upstream ${pool.name} has no healthy target`)
    tried.add(target)
    ctx.upstream = target.origin
    const last = retry === null || attempt >= retry.count
    target.active++
    let res: Response
    try {
      res = await fetch(upstreamUrl(target.base, ctx), {
        method: ctx.method,
        headers: ctx.upstreamHeaders,
        body,
        redirect: 'manual',
        decompress: false,
        signal: AbortSignal.timeout(timeoutMs),
        duplex: 'half',
      })
    } catch (err) {
      target.active--
      ctx.upstreamMs = performance.now() - started
      const kind = fetchFailed(ctx, err)
      if (!last && (kind === 'timeout' ? retry!.on.timeout : retry!.on.connectError)) continue
      if (kind === 'timeout') throw new GatewayError('upstream_timeout', `upstream ${pool.name} did not answer within ${timeoutMs} ms`)
      throw new GatewayError('bad_gateway', `upstream ${pool.name} could not be reached`)
    }
    if (!last && retry!.on.statuses.includes(res.status)) {
      target.active--
      await res.body?.cancel()
      continue
    }
    // In flight until the upstream answers: wrapping the body to count longer would make Bun
    // drop the upstream's Content-Length for chunked framing.
    target.active--
    ctx.upstreamMs = performance.now() - started
    ctx.upstreamStatus = res.status
    stripResponseHeaders(res.headers)
    return res
  }
}
