// Forwarding one request to an upstream target: streamed both ways, bytes untouched.
import type { RequestContext } from './context.ts'
import { GatewayError } from './gateway-error.ts'
import { clientResponseHeaders } from './headers.ts'
import type { UpstreamPool } from './upstream.ts'

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

export async function proxyTo(ctx: RequestContext, pool: UpstreamPool, timeoutMs: number): Promise<Response> {
  const target = pool.next()
  const url = upstreamUrl(target.base, ctx)
  const req = ctx.req
  let body: ReadableStream<Uint8Array> | null = NO_BODY.has(ctx.method) ? null : req.body
  // Always counted (bytes_in of the access log); limited when the route sets `limit body`.
  if (body) body = limitedBody(body, ctx, ctx.bodyLimit ?? Infinity)
  ctx.upstream = target.origin
  const started = performance.now()
  let res: Response
  try {
    res = await fetch(url, {
      method: ctx.method,
      headers: ctx.upstreamHeaders,
      body,
      redirect: 'manual',
      decompress: false,
      signal: AbortSignal.timeout(timeoutMs),
      duplex: 'half',
    })
  } catch (err) {
    ctx.upstreamMs = performance.now() - started
    if (ctx.bodyLimitExceeded) throw new GatewayError('payload_too_large', `the request body is larger than ${ctx.bodyLimit} bytes`)
    const name = (err as { name?: string }).name
    if (name === 'TimeoutError' || name === 'AbortError') {
      throw new GatewayError('upstream_timeout', `upstream ${pool.name} did not answer within ${timeoutMs} ms`)
    }
    throw new GatewayError('bad_gateway', `upstream ${pool.name} could not be reached`)
  }
  ctx.upstreamMs = performance.now() - started
  ctx.upstreamStatus = res.status
  if (!body) ctx.bytesIn = Number(req.headers.get('content-length') ?? 0)
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers: clientResponseHeaders(res.headers) })
}
