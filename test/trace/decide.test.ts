// The decision made before a request's span exists must be the configured sampler's, on the
// trace id the span then gets: a trace id ratio decision stays a function of the trace id.
import { expect, test } from 'bun:test'
import { defaultTextMapGetter, ROOT_CONTEXT, SamplingDecision } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  InMemorySpanExporter,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace'
import { ratioBound } from '../../src/runtime/route-tracing.ts'
import { Decider, IdPool, idWords } from '../../src/trace/decide.ts'
import { requestSpan } from '../../src/trace/spans.ts'
import { Preset } from '../../src/trace/span-data.ts'
import { madeSpans } from './made-spans.ts'
import { traceContext } from './request-context.ts'

function setup(ratio: number) {
  // As tracing.ts makes it for parentbased_traceidratio: new traces decided by the Decider.
  const decider = new Decider(new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }), ratio)
  // Recorded spans are made later (on the span thread): the tests flush them before looking.
  const { exporter, spans, flush } = madeSpans()
  return { exporter, flush, tracers: { decider, spans } }
}

const ctx = traceContext

const TRACEPARENT = /^traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])\r\n/
const ratioSays = (ratio: number, traceId: string) =>
  new TraceIdRatioBasedSampler(ratio).shouldSample(ROOT_CONTEXT, traceId).decision === SamplingDecision.RECORD_AND_SAMPLED

test('new traces: recorded exactly when the ratio sampler says so for the trace id the span carries', () => {
  const { exporter, tracers, flush } = setup(0.3)
  let recorded = 0
  for (let i = 0; i < 1000; i++) {
    const t = requestSpan(tracers, ctx())
    const m = TRACEPARENT.exec(t.headerLines)!
    const traceId = m[1]!
    const attempt = t.attempt('up', { hostname: '127.0.0.1', port: 1 }, 0)
    attempt.answered(200)
    attempt.bodyEnded(null)
    const entry: Record<string, string | number | null> = { status: 200, gateway_error: null, app: null }
    t.end(entry)
    flush()
    expect(entry.trace_id).toBe(traceId)
    const sampled = m[3] === '01'
    expect(sampled).toBe(ratioSays(0.3, traceId))
    if (sampled) {
      recorded++
      const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId)
      expect(spans).toHaveLength(2) // the request's and its try's
      // The try's traceparent names the try span; the request span is its parent.
      const server = spans.find((s) => s.name === 'GET /x/{id}')!
      const client = spans.find((s) => s.name === 'GET')!
      expect(client.parentSpanContext?.spanId).toBe(server.spanContext().spanId)
      expect(attempt.headerLines).toBe(`traceparent: 00-${traceId}-${client.spanContext().spanId}-01\r\n`)
    } else expect(attempt.headerLines).toBe(t.headerLines)
  }
  expect(recorded).toBeGreaterThan(200)
  expect(recorded).toBeLessThan(400)
  expect(exporter.getFinishedSpans()).toHaveLength(recorded * 2)
})

test('a caller decision is followed (parent-based), with its trace id and tracestate', () => {
  const { exporter, tracers, flush } = setup(0)
  const caller = '0af7651916cd43dd8448eb211c80319c'
  const sampled = requestSpan(tracers, ctx({ traceparent: `00-${caller}-b7ad6b7169203331-01`, tracestate: 'v=1' }))
  sampled.end({ status: 200, gateway_error: null, app: null })
  flush()
  expect(exporter.getFinishedSpans().map((s) => [s.spanContext().traceId, s.parentSpanContext?.spanId])).toEqual([[caller, 'b7ad6b7169203331']])

  const unsampled = requestSpan(tracers, ctx({ traceparent: `00-${caller}-b7ad6b7169203331-00`, tracestate: 'v=1' }))
  const m = TRACEPARENT.exec(unsampled.headerLines)!
  expect([m[1], m[3]]).toEqual([caller, '00'])
  expect(m[2]).not.toBe('b7ad6b7169203331')
  expect(unsampled.headerLines).toEndWith('tracestate: v=1\r\n')
  unsampled.end({ status: 200, gateway_error: null, app: null })
  flush()
  expect(exporter.getFinishedSpans()).toHaveLength(1)
})

test('spans the SDK starts outside a preset get the fallback sampler and fresh ids', () => {
  const exporter = new InMemorySpanExporter()
  const preset = new Preset(new AlwaysOnSampler())
  const tracer = new TracerProvider({ sampler: preset, idGenerator: preset, spanProcessors: [new SimpleSpanProcessor({ exporter })] }).getTracer('t')
  const a = tracer.startSpan('a', undefined, ROOT_CONTEXT)
  const b = preset.startWith('0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331', { decision: SamplingDecision.RECORD_AND_SAMPLED }, () =>
    tracer.startSpan('b', undefined, ROOT_CONTEXT),
  )
  const c = tracer.startSpan('c', undefined, ROOT_CONTEXT)
  for (const s of [a, b, c]) s.end()
  const ids = exporter.getFinishedSpans().map((s) => s.spanContext())
  expect(ids).toHaveLength(3)
  expect(ids[1]).toMatchObject({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331' })
  expect(new Set(ids.map((i) => i.traceId)).size).toBe(3)
  for (const i of ids) expect(i.traceId).toMatch(/^[0-9a-f]{32}$/)
})

test('ids from the pool: lowercase hex of the asked length, never all zeros, all distinct across refills', () => {
  const pool = new IdPool()
  const seen = new Set<string>()
  for (let i = 0; i < 3000; i++) {
    // 3000 trace ids and 3000 span ids: several refills of the 16 KiB pool.
    const traceId = pool.take(32)
    const spanId = pool.take(16)
    expect(traceId).toMatch(/^[0-9a-f]{32}$/)
    expect(spanId).toMatch(/^[0-9a-f]{16}$/)
    expect(traceId).not.toBe('0'.repeat(32))
    expect(spanId).not.toBe('0'.repeat(16))
    seen.add(traceId).add(spanId)
    // The words the pool reads off the random bytes are those of the hex it hands out.
    expect(pool.lastWords).toBe(idWords(traceId))
  }
  expect(seen.size).toBe(6000)
})

test("a new trace's ratio decision is the SDK sampler's, at every ratio and at the bound itself", () => {
  const sdk = (ratio: number, traceId: string) => new TraceIdRatioBasedSampler(ratio).shouldSample(ROOT_CONTEXT, traceId).decision
  const hex8 = (n: number) => n.toString(16).padStart(8, '0')
  for (const ratio of [0, 1e-9, 0.001, 0.01, 0.3, 0.5, 0.999999, 1]) {
    for (const decider of [
      new Decider(new TraceIdRatioBasedSampler(ratio), ratio),
      new Decider(new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }), ratio),
    ]) {
      for (let i = 0; i < 3000; i++) {
        const { traceId, result } = decider.decide(ROOT_CONTEXT, undefined, 'x')
        expect(result.decision).toBe(sdk(ratio, traceId))
      }
    }
    // Ids whose words XOR to just under, at and just over the bound (the words spread over
    // all four places, so the XOR and the word order are both exercised), decided by a
    // Decider that is handed them as its new trace ids.
    const bound = ratioBound(ratio)
    for (const target of [bound - 1, bound, bound + 1]) {
      if (target < 1 || target > 0xffffffff) continue
      const a = 0x9e3779b9
      const b = 0x7f4a7c15
      const id = hex8(a) + hex8(b) + hex8((target ^ a ^ b ^ 0x0badf00d) >>> 0) + hex8(0x0badf00d)
      expect(idWords(id)).toBe(target)
      const given = new Decider(new TraceIdRatioBasedSampler(ratio), ratio, { take: (n) => (n === 32 ? id : '00f067aa0ba902b7') })
      const { traceId, result } = given.decide(ROOT_CONTEXT, undefined, 'x')
      expect(traceId).toBe(id)
      expect(result.decision).toBe(sdk(ratio, id))
    }
  }
  // Other samplers are asked as before.
  const on = new Decider(new AlwaysOnSampler())
  expect(on.decide(ROOT_CONTEXT, undefined, 'x').result.decision).toBe(SamplingDecision.RECORD_AND_SAMPLED)
})

// A route's `trace sample` (its bound) replaces the sampler's ratio for new traces, and for a
// caller's trace unless the sampler is parent-based.
test("a route's ratio decides its new traces by the SDK sampler's arithmetic, whatever the gateway's sampler", () => {
  const sdk = (ratio: number, traceId: string) => new TraceIdRatioBasedSampler(ratio).shouldSample(ROOT_CONTEXT, traceId).decision
  for (const routeRatio of [0, 0.01, 0.5, 1]) {
    for (const decider of [
      new Decider(new AlwaysOnSampler()),
      new Decider(new AlwaysOffSampler()),
      new Decider(new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0.3) }), 0.3),
      new Decider(new TraceIdRatioBasedSampler(0.3), 0.3),
    ]) {
      expect(decider.decidesByRatio(false, ratioBound(routeRatio))).toBe(true)
      let recorded = 0
      for (let i = 0; i < 2000; i++) {
        const { traceId, result } = decider.decide(ROOT_CONTEXT, undefined, 'x', ratioBound(routeRatio))
        expect(result.decision).toBe(sdk(routeRatio, traceId))
        if (result.decision === SamplingDecision.RECORD_AND_SAMPLED) recorded++
      }
      if (routeRatio === 0) expect(recorded).toBe(0)
      if (routeRatio === 1) expect(recorded).toBe(2000)
      if (routeRatio === 0.5) expect(Math.abs(recorded - 1000)).toBeLessThan(150)
    }
  }
})

test("a caller's trace on a route with its own ratio: the caller's flag under a parent-based sampler, else the route's ratio", () => {
  const caller = '0af7651916cd43dd8448eb211c80319c' // its words XOR to 0x84f2fc79: 0.52 of the range
  const w3c = new W3CTraceContextPropagator()
  const parent = (flags: string) => w3c.extract(ROOT_CONTEXT, { traceparent: `00-${caller}-b7ad6b7169203331-${flags}` }, defaultTextMapGetter)
  const parentBased = new Decider(new ParentBasedSampler({ root: new AlwaysOffSampler() }))
  expect(parentBased.decidesByRatio(true, ratioBound(0))).toBe(false)
  expect(parentBased.decide(parent('01'), caller, 'GET /x', ratioBound(0)).result.decision).toBe(SamplingDecision.RECORD_AND_SAMPLED)
  expect(parentBased.decide(parent('00'), caller, 'GET /x', ratioBound(1)).result.decision).toBe(SamplingDecision.NOT_RECORD)

  const byRatio = new Decider(new AlwaysOnSampler())
  expect(byRatio.decidesByRatio(true, ratioBound(0.4))).toBe(true)
  expect(byRatio.decidesByRatio(true, null)).toBe(false)
  for (const [ratio, flags] of [
    [0.4, '01'],
    [0.6, '00'],
  ] as const) {
    const { traceId, result } = byRatio.decide(parent(flags), caller, 'GET /x', ratioBound(ratio))
    expect(traceId).toBe(caller)
    expect(result.decision).toBe(new TraceIdRatioBasedSampler(ratio).shouldSample(ROOT_CONTEXT, caller).decision)
  }
  expect(byRatio.decide(parent('00'), caller, 'GET /x', null).result.decision).toBe(SamplingDecision.RECORD_AND_SAMPLED)
})
