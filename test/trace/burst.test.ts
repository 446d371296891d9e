// A recorded request's spans are kept as data and made by the SDK in bursts (src/trace/spans.ts):
// what the export gets must be what the request was (its ids, times, attributes and
// status), only later.
import { expect, test } from 'bun:test'
import { hrTimeToMilliseconds } from '@opentelemetry/core'
import { AlwaysOnSampler, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import { Decider } from '../../src/trace/decide.ts'
import { Burst, requestSpan } from '../../src/trace/spans.ts'
import { untilTruthy } from '../helpers/poll.ts'
import { traceContext } from './request-context.ts'

function setup() {
  const exporter = new InMemorySpanExporter()
  const decider = new Decider(new AlwaysOnSampler())
  const provider = new TracerProvider({ sampler: decider, idGenerator: decider, spanProcessors: [new SimpleSpanProcessor({ exporter })] })
  const tracer = provider.getTracer('test')
  return { exporter, tracers: { decider, burst: new Burst(tracer, decider) } }
}

const ctx = () => traceContext({ 'user-agent': 'burst-test' })

const TRACEPARENT = /^traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-01\r\n$/

test('spans keep the ids their traceparent lines named, their own times, attributes and status', async () => {
  const { exporter, tracers } = setup()
  const c = ctx()
  const t = requestSpan(tracers, c)
  const [, traceId, requestSpanId] = TRACEPARENT.exec(t.headerLines)!
  const attempt = t.attempt('orders', { hostname: '127.0.0.1', port: 9 }, 1)
  const [, , trySpanId] = TRACEPARENT.exec(attempt.headerLines)!
  attempt.failed('connect_refused', 'connection refused')
  const tryEnded = performance.timeOrigin + performance.now()
  t.end({ status: 502, gateway_error: 'upstream_unavailable', app: 'shop' })
  const ended = performance.timeOrigin + performance.now()
  expect(exporter.getFinishedSpans()).toHaveLength(0) // not made yet
  await Bun.sleep(80) // past the burst's 50 ms: the times must still be the request's
  await untilTruthy(() => exporter.getFinishedSpans().length === 2, 2_000)
  const server = exporter.getFinishedSpans().find((s) => s.name === 'GET /x/{id}')!
  const client = exporter.getFinishedSpans().find((s) => s.name === 'GET')!
  expect(server.spanContext()).toMatchObject({ traceId, spanId: requestSpanId })
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
    'user_agent.original': 'burst-test',
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

test('64 ended spans are made at once, without waiting for the timer; flush makes the rest', () => {
  const { exporter, tracers } = setup()
  for (let i = 0; i < 31; i++) requestSpan(tracers, ctx()).end({ status: 200, gateway_error: null, app: null })
  const t = requestSpan(tracers, ctx())
  const a = t.attempt('orders', { hostname: '127.0.0.1', port: 9 }, 0)
  a.answered(200)
  a.bodyEnded(null)
  expect(exporter.getFinishedSpans()).toHaveLength(0) // 32 ended
  for (let i = 0; i < 31; i++) requestSpan(tracers, ctx()).end({ status: 200, gateway_error: null, app: null })
  expect(exporter.getFinishedSpans()).toHaveLength(0) // 63 ended
  requestSpan(tracers, ctx()).end({ status: 200, gateway_error: null, app: null })
  expect(exporter.getFinishedSpans()).toHaveLength(64) // the 64th ended: all made
  t.end({ status: 200, gateway_error: null, app: null })
  expect(exporter.getFinishedSpans()).toHaveLength(64)
  tracers.burst.flush()
  expect(exporter.getFinishedSpans()).toHaveLength(65)
})
