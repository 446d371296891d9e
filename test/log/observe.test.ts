// The observer in process: one log line and one metrics record per request, once the body
// is delivered; what a route's `log` stage adds; answers without a route; clients that left.
import { describe, expect, test } from 'bun:test'
import { AccessLog } from '../../src/log/access-log.ts'
import { Metrics } from '../../src/metrics/metrics.ts'
import type { LogFn, RequestContext } from '../../src/runtime/context.ts'
import type { EarlyFacts } from '../../src/runtime/handle.ts'
import { createObserver } from '../../src/runtime/observe.ts'

function setup() {
  const lines: string[] = []
  const metrics = new Metrics()
  const observer = createObserver(new AccessLog({ write: (l) => void lines.push(l), flush: () => {} }, 'json'), metrics)
  const entries = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>)
  return { observer, metrics, entries }
}

type Over = {
  log?: LogFn[]
  method?: string
  aborted?: boolean
  bytesOut?: number | null
  bodyPending?: boolean
  gatewayError?: string | null
  upgraded?: boolean
}

function context(over: Over = {}): RequestContext {
  const controller = new AbortController()
  if (over.aborted) controller.abort()
  const req = new Request('http://gateway.test/api/7?token=t&x=1', { method: over.method ?? 'GET', signal: controller.signal })
  const facts = {
    req,
    id: 'rid-1',
    start: performance.now() - 5,
    method: over.method ?? 'GET',
    path: '/api/7',
    rawQuery: 'token=t&x=1',
    ip: '10.0.0.9',
    route: { id: 'GET /api/{id}', plan: { log: over.log ?? [] } },
    identity: { app: { name: 'partner' }, user: { id: 'u-1', info: {} }, jwt: null, via: 'key' },
    upstream: 'http://127.0.0.1:9',
    upstreamStatus: 201,
    upstreamMs: 1.23456,
    gatewayError: over.gatewayError ?? null,
    bytesIn: 12,
    bytesOut: over.bytesOut ?? null,
    bodyPending: over.bodyPending ?? false,
    onBodyEnd: null,
    upgraded: over.upgraded ?? false,
  }
  return facts as unknown as RequestContext
}

const metric = (m: Metrics, labels: string) =>
  m
    .render()
    .split('\n')
    .find((l) => l.startsWith(`gateway_requests_total{${labels}} `))

describe('observer', () => {
  test('a routed answer with a length: every contract field, and the route counted', () => {
    const { observer, metrics, entries } = setup()
    const res = new Response('hello', { status: 201, headers: { 'content-length': '5' } })
    expect(observer.done(context(), res)).toBe(res)
    const [e] = entries()
    expect(e).toMatchObject({
      request_id: 'rid-1',
      method: 'GET',
      path: '/api/7',
      query: 'token=[redacted]&x=1',
      route: 'GET /api/{id}',
      status: 201,
      gateway_error: null,
      app: 'partner',
      user: 'u-1',
      ip: '10.0.0.9',
      upstream: 'http://127.0.0.1:9',
      upstream_status: 201,
      upstream_ms: 1.23,
      bytes_in: 12,
      bytes_out: 5,
    })
    expect(e!.duration_ms as number).toBeGreaterThanOrEqual(5)
    expect(Math.abs(Date.parse(e!.time as string) - Date.now())).toBeLessThan(1_000)
    expect(metric(metrics, 'route="GET /api/{id}",status="201",code=""')).toEndWith(' 1')
    expect(metrics.render()).toContain('gateway_upstream_duration_seconds_count{upstream="http://127.0.0.1:9"} 1\n')
  })

  test("fields a route's log stage adds or changes reach the line, and its metrics", () => {
    const { observer, metrics, entries } = setup()
    const tag: LogFn = (_ctx, entry) => {
      entry.tenant = 'acme "quoted"'
      entry.status = 299
    }
    observer.done(context({ log: [tag] }), new Response(null, { status: 204 }))
    const [e] = entries()
    expect(Object.keys(e!).at(-1)).toBe('tenant')
    expect(e).toMatchObject({ tenant: 'acme "quoted"', status: 299, bytes_out: 0 })
    expect(metric(metrics, 'route="GET /api/{id}",status="299",code=""')).toEndWith(' 1')
  })

  test('a streamed body is counted, and the line written once it is delivered', async () => {
    const { observer, entries } = setup()
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array(3))
        c.enqueue(new Uint8Array(4))
        c.close()
      },
    })
    const res = observer.done(context(), new Response(body, { status: 200 }))
    expect(entries()).toHaveLength(0)
    expect((await res.arrayBuffer()).byteLength).toBe(7)
    expect(entries()).toMatchObject([{ status: 200, bytes_out: 7 }])
  })

  test('an answer whose body the proxy counted: no wrapper, its count and its code', () => {
    const { observer, entries } = setup()
    const res = new Response('abc', { status: 200 })
    expect(observer.done(context({ bytesOut: 3, gatewayError: null }), res)).toBe(res)
    expect(entries()).toMatchObject([{ status: 200, bytes_out: 3, gateway_error: null }])
  })

  test('a proxied body still streaming: the line waits for the proxy to say it ended, with why it was cut', () => {
    const { observer, entries } = setup()
    const ctx = context({ bodyPending: true })
    const res = new Response(new ReadableStream({ start: (c) => c.enqueue(new Uint8Array(10)) }), { status: 200 })
    expect(observer.done(ctx, res)).toBe(res)
    expect(entries()).toHaveLength(0)
    ctx.bytesOut = 10
    ctx.gatewayError = 'upstream_timeout'
    ctx.bodyPending = false
    ctx.onBodyEnd!()
    expect(entries()).toMatchObject([{ status: 200, bytes_out: 10, gateway_error: 'upstream_timeout' }])
  })

  test('an upgraded WebSocket is logged as 101', () => {
    const { observer, entries } = setup()
    observer.done(context({ upgraded: true }), new Response(null))
    expect(entries()).toMatchObject([{ status: 101 }])
  })

  test('HEAD sends no body whatever its Content-Length says', () => {
    const { observer, entries } = setup()
    observer.done(context({ method: 'HEAD' }), new Response(null, { status: 200, headers: { 'content-length': '99' } }))
    expect(entries()).toMatchObject([{ method: 'HEAD', bytes_out: 0 }])
  })

  test('an answer before any route: route, upstream and the rest are null, counted under route ""', () => {
    const { observer, metrics, entries } = setup()
    const facts: EarlyFacts = {
      id: 'rid-2',
      method: 'GET',
      path: '/nowhere',
      rawQuery: '',
      ip: '10.0.0.1',
      start: performance.now(),
      gatewayError: 'no_route',
    }
    observer.done(facts, new Response('{}', { status: 404, headers: { 'gateway-error': 'no_route', 'content-length': '2' } }))
    expect(entries()).toMatchObject([
      {
        route: null,
        status: 404,
        gateway_error: 'no_route',
        app: null,
        user: null,
        upstream: null,
        upstream_status: null,
        upstream_ms: null,
        bytes_in: 0,
        bytes_out: 2,
      },
    ])
    expect(metric(metrics, 'route="",status="404",code="no_route"')).toEndWith(' 1')
  })

  test('a client that left is 499 client_closed, in the log and the metrics', () => {
    const { observer, metrics, entries } = setup()
    observer.done(context({ aborted: true }), new Response('x', { headers: { 'content-length': '1' } }))
    expect(entries()).toMatchObject([{ status: 499, gateway_error: 'client_closed' }])
    expect(metric(metrics, 'route="GET /api/{id}",status="499",code="client_closed"')).toEndWith(' 1')
  })

  test('an observer that has seen no request adds no metrics series', () => {
    const { metrics } = setup()
    expect(metrics.render()).toBe(new Metrics().render())
  })
})
