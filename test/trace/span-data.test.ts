// A recorded request's spans are kept as data, sent on in batches and made by the SDK on the
// span thread (src/trace/span-data.ts, spans.ts): what the export gets must be what the request
// was (its ids, parents, times, attributes and status), only later.
import { expect, test } from 'bun:test'
import { hrTimeToMilliseconds } from '@opentelemetry/core'
import { AlwaysOnSampler } from '@opentelemetry/sdk-trace'
import { Decider } from '../../src/trace/decide.ts'
import type { SpanData } from '../../src/trace/span-data.ts'
import { requestSpan, SpanPipe } from '../../src/trace/spans.ts'
import { madeSpans } from './made-spans.ts'
import { traceContext } from './request-context.ts'

const ctx = (headers: Record<string, string> = {}) => traceContext({ 'user-agent': 'span-data-test', ...headers })
const TRACEPARENT = /^traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-01\r\n/
const END = { status: 200, gateway_error: null, app: null }

test('spans keep the ids their traceparent lines named, their parents, their own times, attributes and status', async () => {
  const { exporter, spans, flush } = madeSpans()
  const tracers = { decider: new Decider(new AlwaysOnSampler()), spans }
  const c = ctx()
  const t = requestSpan(tracers, c)
  const [, traceId, requestSpanId] = TRACEPARENT.exec(t.headerLines)!
  const attempt = t.attempt('orders', { hostname: '127.0.0.1', port: 9 }, 1)
  const [, , trySpanId] = TRACEPARENT.exec(attempt.headerLines)!
  attempt.failed('connect_refused', 'connection refused')
  const tryEnded = performance.timeOrigin + performance.now()
  t.end({ status: 502, gateway_error: 'upstream_unavailable', app: 'shop' })
  const ended = performance.timeOrigin + performance.now()
  await Bun.sleep(30) // made later: the times must still be the request's
  flush()
  const server = exporter.getFinishedSpans().find((s) => s.name === 'GET /x/{id}')!
  const client = exporter.getFinishedSpans().find((s) => s.name === 'GET')!
  expect(server.spanContext()).toMatchObject({ traceId, spanId: requestSpanId, traceFlags: 1 })
  expect(client.spanContext()).toMatchObject({ traceId, spanId: trySpanId })
  expect(client.parentSpanContext?.spanId).toBe(requestSpanId)
  expect(server.parentSpanContext).toBeUndefined()
  expect(hrTimeToMilliseconds(server.startTime)).toBeCloseTo(performance.timeOrigin + c.start, 0)
  expect(hrTimeToMilliseconds(server.endTime)).toBeLessThanOrEqual(ended + 1)
  expect(hrTimeToMilliseconds(client.endTime)).toBeLessThanOrEqual(tryEnded + 1)
  expect(server.attributes).toMatchObject({
    'http.request.method': 'GET',
    'http.route': '/x/{id}',
    'http.response.status_code': 502,
    'portcullis.gateway_error': 'upstream_unavailable',
    'portcullis.app': 'shop',
    'error.type': 'upstream_unavailable',
    'user_agent.original': 'span-data-test',
  })
  expect(server.status.code).toBe(2) // ERROR
  expect(client.attributes).toMatchObject({
    'portcullis.upstream': 'orders',
    'portcullis.attempt': 2,
    'http.request.resend_count': 1,
    'error.type': 'connect_refused',
  })
  expect(client.status).toEqual({ code: 2, message: 'connection refused' })
})

test("a caller's span is the request span's remote parent, with its flags and tracestate", () => {
  const { exporter, spans, flush } = madeSpans()
  const tracers = { decider: new Decider(new AlwaysOnSampler()), spans }
  const caller = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331' }
  const t = requestSpan(
    tracers,
    ctx({ traceparent: `00-${caller.traceId}-${caller.spanId}-01`, tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7' }),
  )
  const a = t.attempt('orders', { hostname: '127.0.0.1', port: 9 }, 0)
  expect(a.headerLines).toEndWith('tracestate: congo=t61rcWkgMzE,rojo=00f067aa0ba902b7\r\n')
  a.answered(200)
  a.bodyEnded(null)
  t.end(END)
  flush()
  const server = exporter.getFinishedSpans().find((s) => s.name === 'GET /x/{id}')!
  const client = exporter.getFinishedSpans().find((s) => s.name === 'GET')!
  expect(server.parentSpanContext).toMatchObject({ ...caller, traceFlags: 1, isRemote: true })
  expect(server.spanContext().traceState?.serialize()).toBe('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7')
  expect(client.spanContext().traceState?.serialize()).toBe('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7')
  expect(client.parentSpanContext).toMatchObject({ traceId: caller.traceId, spanId: server.spanContext().spanId, isRemote: false })
})

const LIMITS = { maxSpans: 256, maxMs: 100, maxInFlight: 4 }
function pipe(limits = LIMITS) {
  const sent: SpanData[][] = []
  const dropped: number[] = []
  const spans = new SpanPipe(
    (json) => sent.push(JSON.parse(json) as SpanData[]),
    limits,
    (n) => dropped.push(n),
  )
  return { sent, dropped, pipe: spans }
}

test('the pipe sends its batch (here 256) at once, without waiting for its timer; flush sends the rest', () => {
  const { sent, pipe: spans } = pipe()
  const tracers = { decider: new Decider(new AlwaysOnSampler()), spans }
  for (let i = 0; i < 255; i++) requestSpan(tracers, ctx()).end(END)
  expect(sent).toHaveLength(0)
  requestSpan(tracers, ctx()).end(END)
  expect(sent.map((b) => b.length)).toEqual([256])
  requestSpan(tracers, ctx()).end(END)
  spans.flush()
  expect(sent.map((b) => b.length)).toEqual([256, 1])
  spans.flush() // nothing pending: nothing sent
  expect(sent).toHaveLength(2)
})

test('a span that ended alone is sent by the pipe’s timer (here 100 ms) later', async () => {
  const { promise, resolve } = Promise.withResolvers<SpanData[]>()
  const spans = new SpanPipe(
    (json) => resolve(JSON.parse(json) as SpanData[]),
    LIMITS,
    () => {},
  )
  requestSpan({ decider: new Decider(new AlwaysOnSampler()), spans }, ctx()).end(END)
  const t0 = performance.now()
  expect(await promise).toHaveLength(1)
  expect(performance.now() - t0).toBeGreaterThan(50)
})

test('batches the other side has not taken are bounded: past maxInFlight a batch is dropped and counted', () => {
  const { sent, dropped, pipe: spans } = pipe({ maxSpans: 2, maxMs: 100, maxInFlight: 2 })
  const tracers = { decider: new Decider(new AlwaysOnSampler()), spans }
  for (let i = 0; i < 6; i++) requestSpan(tracers, ctx()).end(END) // three batches of two
  expect(sent.map((b) => b.length)).toEqual([2, 2])
  expect(dropped).toEqual([2])
  spans.taken() // the span thread made one
  for (let i = 0; i < 2; i++) requestSpan(tracers, ctx()).end(END)
  expect(sent.map((b) => b.length)).toEqual([2, 2, 2])
  expect(dropped).toEqual([2])
})
