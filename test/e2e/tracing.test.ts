// Tracing through the real gateway: W3C trace context continued from the client (or started),
// a span per request and per upstream try, exported over OTLP/HTTP to a local receiver.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { freePort, policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { until } from '../helpers/poll.ts'
import { startReceiver, type Receiver, type ReceivedSpan } from '../trace/otlp-receiver.ts'

const API_KEY = 'kp-0123456789abcdef'
const SERVER = 2
const CLIENT = 3
const ERROR = 2
const FAST = { OTEL_BSP_SCHEDULE_DELAY: '20' }

const hex = (bytes: number) => Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString('hex')
function clientTrace(flags = '01') {
  const traceId = hex(16)
  const spanId = hex(8)
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-${flags}` }
}
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/

// What the upstream was sent, by the X-Probe header of the request.
const seen = new Map<string, { traceparent: string | null; tracestate: string | null }[]>()
function record(req: Request): void {
  const probe = req.headers.get('x-probe') ?? ''
  const list = seen.get(probe) ?? []
  list.push({ traceparent: req.headers.get('traceparent'), tracestate: req.headers.get('tracestate') })
  seen.set(probe, list)
}

let up: Upstream
let flaky: Upstream
// A WebSocket upstream that first sends back the headers of its handshake.
let wsUp: ReturnType<typeof Bun.serve<{ headers: Record<string, string> }>>
let closed: number
let dir: string
const started: RunningGateway[] = []
const receivers: Receiver[] = []

beforeAll(() => {
  up = startUpstream((req) => {
    record(req)
    return Response.json({ ok: true })
  })
  flaky = startUpstream((req) => {
    record(req)
    return new Response('busy', { status: 503 })
  })
  wsUp = Bun.serve<{ headers: Record<string, string> }>({
    hostname: '127.0.0.1',
    port: 0,
    fetch: (req, server) =>
      server.upgrade(req, { data: { headers: Object.fromEntries(req.headers) } }) ? undefined : new Response('no', { status: 400 }),
    websocket: { open: (ws) => void ws.send(JSON.stringify(ws.data.headers)), message() {} },
  })
  closed = freePort()
  dir = policyDir({
    'main.policy': `
app partner {
  key "partner"
  api-key env KEY_P
}
upstream echo { target ${up.url} }
upstream retried {
  target http://127.0.0.1:${closed}
  target ${up.url}
  retry 1 on connect-error
}
upstream on-status {
  target ${flaky.url}
  target ${up.url}
  retry 1 on 503
}
upstream gone { target http://127.0.0.1:${closed} }
upstream ws { target http://127.0.0.1:${wsUp.port} }

match GET /echo/{id} { proxy echo }
match GET /keyed { require key; proxy echo }
match GET /retry { proxy retried }
match GET /status { proxy on-status }
match GET /gone { proxy gone }
match GET /chat { proxy ws websocket }
match GET /own-trace { set header traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"; proxy echo }
match GET /no-trace { remove header traceparent; remove header tracestate; proxy echo }
match GET /untraced { trace off; proxy echo }
match GET /always { trace sample 100%; proxy echo }
match GET /never { trace sample 0%; proxy echo }
`,
  })
})

afterAll(async () => {
  for (const gw of started) await gw.stop()
  for (const r of receivers) r.stop()
  up?.stop()
  flaky?.stop()
  wsUp?.stop(true)
  removeDir(dir)
})

async function gateway(args: string[], env: Record<string, string>): Promise<RunningGateway> {
  const gw = await startGateway(dir, args, { KEY_P: API_KEY, ...env })
  started.push(gw)
  return gw
}

function receiver(opts?: { hang?: boolean }): Receiver {
  const r = startReceiver(opts)
  receivers.push(r)
  return r
}

const spansOf = (r: Receiver, traceId: string) => r.spans.filter((s) => s.traceId === traceId)
function waitSpans(r: Receiver, traceId: string, n: number): Promise<ReceivedSpan[]> {
  return until(
    () => spansOf(r, traceId),
    (s) => s.length >= n,
    5_000,
    `${n} spans of trace ${traceId}`,
  )
}
const serverSpan = (spans: ReceivedSpan[]) => spans.find((s) => s.kind === SERVER)!
const tries = (spans: ReceivedSpan[]) =>
  spans.filter((s) => s.kind === CLIENT).sort((a, b) => Number(a.attributes['portcullis.attempt']) - Number(b.attributes['portcullis.attempt']))

// Two requests to `path`, each continuing a client trace of its own (round robin: one of them
// is the one a two-target upstream retries), and the spans each trace got.
async function twoTraced(gw: RunningGateway, rx: Receiver, path: string, probe: string) {
  const traces = [clientTrace(), clientTrace()]
  for (const [i, c] of traces.entries()) expect((await get(gw, path, `${probe} ${i}`, { traceparent: c.traceparent })).status).toBe(200)
  const all = await Promise.all(
    traces.map((c) =>
      until(
        () => spansOf(rx, c.traceId),
        (s) => s.length >= 2 && s.some((x) => x.kind === SERVER),
        5_000,
      ),
    ),
  )
  return { traces, all }
}

async function get(gw: RunningGateway, path: string, probe: string, headers: Record<string, string> = {}): Promise<Response> {
  const res = await gw.fetch(path, { headers: { 'x-probe': probe, ...headers } })
  await res.arrayBuffer()
  return res
}

describe('tracing on (OTLP http/json)', () => {
  let gw: RunningGateway
  let rx: Receiver

  beforeAll(async () => {
    rx = receiver()
    gw = await gateway([], { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', ...FAST })
  }, 20_000)

  test('the client trace is continued: request span under the client span, try span under it, upstream under the try', async () => {
    const c = clientTrace()
    const res = await get(gw, '/echo/42', 'continued', { traceparent: c.traceparent, tracestate: 'vendor=abc,other=1' })
    expect(res.status).toBe(200)
    const spans = await waitSpans(rx, c.traceId, 2)
    expect(spans).toHaveLength(2)
    const req = serverSpan(spans)
    const [attempt] = tries(spans)
    expect(req.parentSpanId).toBe(c.spanId)
    expect(req.name).toBe('GET /echo/{id}')
    expect(req.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/echo/42',
      'url.scheme': 'http',
      'http.route': '/echo/{id}',
      'portcullis.route': 'GET /echo/{id}',
      'http.response.status_code': 200,
      'server.address': '127.0.0.1',
      'client.address': '127.0.0.1',
    })
    expect(req.attributes['portcullis.gateway_error']).toBeUndefined()
    expect(req.attributes['portcullis.request_id']).toBe(res.headers.get('x-request-id')!)
    expect(req.status.code).not.toBe(ERROR)
    expect(req.resource['service.name']).toBe('portcullis')
    expect(req.traceState).toBe('vendor=abc,other=1')

    expect(attempt!.parentSpanId).toBe(req.spanId)
    expect(attempt!.attributes).toMatchObject({
      'http.request.method': 'GET',
      'server.address': '127.0.0.1',
      'server.port': up.port,
      'portcullis.upstream': 'echo',
      'portcullis.attempt': 1,
      'http.response.status_code': 200,
    })
    expect(attempt!.startNs >= req.startNs && attempt!.endNs <= req.endNs).toBe(true)

    // The upstream's parent is the try's span: its own spans nest under it.
    const sent = seen.get('continued')!
    expect(sent).toHaveLength(1)
    expect(sent[0]!.traceparent).toBe(`00-${c.traceId}-${attempt!.spanId}-01`)
    expect(sent[0]!.tracestate).toBe('vendor=abc,other=1')

    const line = await until(() => gw.accessLog().find((l) => l.request_id === res.headers.get('x-request-id')), Boolean, 2_000)
    expect(line!.trace_id).toBe(c.traceId)
  })

  test('no traceparent: a new trace starts at the gateway and goes upstream', async () => {
    const res = await get(gw, '/echo/1', 'fresh')
    expect(res.status).toBe(200)
    const [sent] = seen.get('fresh')!
    const m = TRACEPARENT.exec(sent!.traceparent ?? '')
    expect(m).not.toBeNull()
    const spans = await waitSpans(rx, m![1]!, 2)
    const req = serverSpan(spans)
    expect(req.parentSpanId).toBe('')
    expect(tries(spans)[0]!.spanId).toBe(m![2]!)
    expect(m![3]).toBe('01')
  })

  test('a route that sets or removes traceparent itself has its way; its request is still traced', async () => {
    const client = clientTrace()
    await get(gw, '/own-trace', 'own', { traceparent: client.traceparent, tracestate: 'vendor=x' })
    const [own] = seen.get('own')!
    expect(own!.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')
    expect(own!.tracestate).toBeNull()
    await get(gw, '/no-trace', 'none', { traceparent: client.traceparent, tracestate: 'vendor=x' })
    const [none] = seen.get('none')!
    expect(none!.traceparent).toBeNull()
    expect(none!.tracestate).toBeNull()
    // Both requests continued the client's trace in the gateway's own spans.
    const spans = await waitSpans(rx, client.traceId, 4)
    expect(spans.filter((s) => s.kind === SERVER).length).toBe(2)
  })

  test.each([
    ['garbage', 'not-a-traceparent'],
    ['upper-case hex', `00-${'A'.repeat(32)}-${'B'.repeat(16)}-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${'b'.repeat(16)}-01`],
    ['version ff', `ff-${'a'.repeat(32)}-${'b'.repeat(16)}-01`],
    ['a short span id', `00-${'a'.repeat(32)}-${'b'.repeat(15)}-01`],
  ])('a malformed traceparent (%s) is ignored: a new trace, never an error', async (name, value) => {
    const probe = `malformed ${name}`
    const res = await get(gw, '/echo/2', probe, { traceparent: value, tracestate: 'vendor=x' })
    expect(res.status).toBe(200)
    const [sent] = seen.get(probe)!
    const m = TRACEPARENT.exec(sent!.traceparent ?? '')
    expect(m).not.toBeNull()
    expect(sent!.traceparent).not.toContain('aaaaaaaa')
    // The client's tracestate belongs to the trace it named: not carried into a new one.
    expect(sent!.tracestate).toBeNull()
    const spans = await waitSpans(rx, m![1]!, 2)
    expect(serverSpan(spans).parentSpanId).toBe('')
  })

  test('a retried connect error: one try span per attempt, numbered, both under the request span', async () => {
    // Round robin: of two requests, one starts on the closed target and is retried.
    const { traces, all } = await twoTraced(gw, rx, '/retry', 'retry')
    const retried = all.find((s) => tries(s).length === 2)
    expect(retried).toBeDefined()
    const req = serverSpan(retried!)
    const [first, second] = tries(retried!)
    for (const t of [first!, second!]) expect(t.parentSpanId).toBe(req.spanId)
    expect(first!.attributes).toMatchObject({ 'portcullis.attempt': 1, 'server.port': closed, 'error.type': 'connect' })
    expect(first!.attributes['http.request.resend_count']).toBeUndefined()
    expect(first!.status.code).toBe(ERROR)
    expect(second!.attributes).toMatchObject({
      'portcullis.attempt': 2,
      'http.request.resend_count': 1,
      'server.port': up.port,
      'http.response.status_code': 200,
    })
    expect(req.attributes['http.response.status_code']).toBe(200)
    // The upstream that answered was named the second try as its parent.
    const i = all.indexOf(retried!)
    expect(seen.get(`retry ${i}`)!.map((s) => s.traceparent)).toEqual([`00-${traces[i]!.traceId}-${second!.spanId}-01`])
  })

  test('a retried 503: the first try span carries the status, each upstream saw its own try as parent', async () => {
    const { traces, all } = await twoTraced(gw, rx, '/status', 'status')
    const i = all.findIndex((s) => tries(s).length === 2)
    expect(i).not.toBe(-1)
    const [first, second] = tries(all[i]!)
    expect(first!.attributes).toMatchObject({
      'portcullis.attempt': 1,
      'http.response.status_code': 503,
      'error.type': '503',
      'server.port': flaky.port,
    })
    expect(second!.attributes).toMatchObject({ 'portcullis.attempt': 2, 'http.response.status_code': 200 })
    expect(seen.get(`status ${i}`)!.map((s) => s.traceparent)).toEqual([first!, second!].map((t) => `00-${traces[i]!.traceId}-${t.spanId}-01`))
  })

  test('a gateway error is on the request span; the app of an identified caller too', async () => {
    const down = clientTrace()
    expect((await get(gw, '/gone', 'gone', { traceparent: down.traceparent })).status).toBe(502)
    const gone = serverSpan(await waitSpans(rx, down.traceId, 2))
    expect(gone.attributes).toMatchObject({
      'http.response.status_code': 502,
      'portcullis.gateway_error': 'bad_gateway',
      'error.type': 'bad_gateway',
    })
    expect(gone.status.code).toBe(ERROR)

    const keyed = clientTrace()
    expect((await get(gw, '/keyed', 'keyed', { traceparent: keyed.traceparent, 'x-api-key': API_KEY })).status).toBe(200)
    expect(serverSpan(await waitSpans(rx, keyed.traceId, 2)).attributes['portcullis.app']).toBe('partner')

    const refused = clientTrace()
    expect((await get(gw, '/keyed', 'refused', { traceparent: refused.traceparent })).status).toBe(401)
    const span = serverSpan(await waitSpans(rx, refused.traceId, 1))
    expect(span.attributes).toMatchObject({ 'http.response.status_code': 401, 'portcullis.gateway_error': 'unauthenticated' })
    expect(span.attributes['portcullis.app']).toBeUndefined()
    expect(span.status.code).not.toBe(ERROR) // a 4xx is the client's, not the server's error
    expect(seen.get('refused')).toBeUndefined()
  })

  test('a WebSocket handshake goes upstream with the request span as parent', async () => {
    const c = clientTrace()
    const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/chat`, {
      headers: { traceparent: c.traceparent, tracestate: 'vendor=ws' },
    } as unknown as string[])
    const first = await new Promise<string>((resolve, reject) => {
      ws.onmessage = (m) => resolve(String(m.data))
      ws.onerror = () => reject(new Error('websocket failed'))
    })
    ws.close()
    const handshake = JSON.parse(first) as Record<string, string>
    const [span] = await waitSpans(rx, c.traceId, 1)
    expect(span!.parentSpanId).toBe(c.spanId)
    expect(span!.attributes['http.response.status_code']).toBe(101)
    expect(handshake.traceparent).toBe(`00-${c.traceId}-${span!.spanId}-01`)
    expect(handshake.tracestate).toBe('vendor=ws')
  })

  test('a request answered before routing (no route) still has its span', async () => {
    const c = clientTrace()
    expect((await get(gw, '/nowhere', 'nowhere', { traceparent: c.traceparent })).status).toBe(404)
    const [span] = await waitSpans(rx, c.traceId, 1)
    expect(span!.parentSpanId).toBe(c.spanId)
    expect(span!.attributes).toMatchObject({ 'http.response.status_code': 404, 'portcullis.gateway_error': 'no_route', 'url.path': '/nowhere' })
  })

  test('exported spans are counted in /metrics', async () => {
    const text = await until(
      () => gw.admin('/metrics').then((r) => r.text()),
      (t) => /gateway_trace_spans_total\{result="exported"\} [1-9]/.test(t),
      5_000,
    )
    expect(text).toContain('# TYPE gateway_trace_spans_total counter')
  })
})

describe('sampling', () => {
  test('--trace-sample 0 (parent-based): nothing new is recorded, a sampled caller still is; traceparent always goes upstream', async () => {
    const rx = receiver()
    const gw = await gateway(['--trace-sample', '0'], { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', ...FAST })
    const unsampled = clientTrace('00')
    const sampled = clientTrace('01')
    await get(gw, '/echo/1', 'ratio0 none')
    await get(gw, '/echo/1', 'ratio0 unsampled', { traceparent: unsampled.traceparent })
    await get(gw, '/echo/1', 'ratio0 sampled', { traceparent: sampled.traceparent })
    const none = TRACEPARENT.exec(seen.get('ratio0 none')![0]!.traceparent ?? '')
    expect(none?.[3]).toBe('00')
    const u = TRACEPARENT.exec(seen.get('ratio0 unsampled')![0]!.traceparent ?? '')
    expect(u?.[1]).toBe(unsampled.traceId)
    expect(u?.[2]).not.toBe(unsampled.spanId) // the gateway's (unrecorded) span is the parent
    expect(u?.[3]).toBe('00')
    expect(await gw.stop()).toBe(0) // flushes what was queued
    expect(new Set(rx.spans.map((s) => s.traceId))).toEqual(new Set([sampled.traceId]))
  }, 20_000)

  test('OTEL_TRACES_SAMPLER=traceidratio with ratio 0: nothing is exported, even for a sampled caller; traceparent is continued', async () => {
    const rx = receiver()
    const gw = await gateway([], {
      OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_TRACES_SAMPLER: 'traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0',
      ...FAST,
    })
    const c = clientTrace('01')
    expect((await get(gw, '/echo/1', 'never', { traceparent: c.traceparent })).status).toBe(200)
    const m = TRACEPARENT.exec(seen.get('never')![0]!.traceparent ?? '')
    expect(m?.[1]).toBe(c.traceId)
    expect(m?.[3]).toBe('00')
    expect(await gw.stop()).toBe(0)
    expect(rx.posts).toEqual([])
  }, 20_000)

  test('a ratio of 0.5 records about half of 200 new traces', async () => {
    const rx = receiver()
    const gw = await gateway(['--trace-sample', '0.5'], { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', ...FAST })
    for (let i = 0; i < 200; i++) await get(gw, '/echo/1', 'half')
    expect(await gw.stop()).toBe(0)
    const traces = new Set(rx.spans.filter((s) => s.kind === SERVER).map((s) => s.traceId))
    // Binomial(200, 0.5): 100 ± 7; outside 60..140 is a broken sampler, not bad luck.
    expect(traces.size).toBeGreaterThan(60)
    expect(traces.size).toBeLessThan(140)
    // Every exported request span has its try span.
    expect(rx.spans.filter((s) => s.kind === CLIENT)).toHaveLength(traces.size)
  }, 20_000)
})

describe("a route's own tracing", () => {
  test('`trace off` is a transparent hop on a traced gateway: no span, no ids, the client trace context as sent', async () => {
    const rx = receiver()
    const gw = await gateway([], { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', ...FAST })
    const c = clientTrace('01')
    expect((await get(gw, '/untraced', 'route off', { traceparent: c.traceparent, tracestate: 'v=1' })).status).toBe(200)
    expect((await get(gw, '/untraced', 'route off none')).status).toBe(200)
    expect(seen.get('route off')).toEqual([{ traceparent: c.traceparent, tracestate: 'v=1' }])
    expect(seen.get('route off none')).toEqual([{ traceparent: null, tracestate: null }])
    // The same caller on a traced route of the same gateway: recorded (the receiver works).
    expect((await get(gw, '/echo/1', 'route off control', { traceparent: c.traceparent })).status).toBe(200)
    await waitSpans(rx, c.traceId, 2)
    expect(await gw.stop()).toBe(0)
    expect(rx.spans.filter((s) => s.attributes['http.route'] === '/untraced')).toEqual([])
    const logged = gw.accessLog().filter((e) => e.path === '/untraced')
    expect(logged).toHaveLength(2)
    for (const e of logged) expect(e).not.toHaveProperty('trace_id')
  }, 20_000)

  test('`trace sample` replaces the gateway ratio for new traces; a sampled caller is still recorded (parent-based)', async () => {
    const rx = receiver()
    const gw = await gateway(['--trace-sample', '0'], { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', ...FAST })
    for (let i = 0; i < 5; i++) expect((await get(gw, '/always', 'route always')).status).toBe(200)
    expect((await get(gw, '/echo/1', 'route default')).status).toBe(200)
    expect((await get(gw, '/never', 'route never')).status).toBe(200)
    const sampled = clientTrace('01')
    expect((await get(gw, '/never', 'route never caller', { traceparent: sampled.traceparent })).status).toBe(200)
    const ids = (probe: string) => seen.get(probe)!.map((h) => TRACEPARENT.exec(h.traceparent ?? '')!)
    // 100%: every new trace is recorded, and the upstream is told so (flag 01).
    const always = ids('route always')
    expect(always.map((m) => m[3])).toEqual(['01', '01', '01', '01', '01'])
    expect(ids('route default')[0]![3]).toBe('00') // the gateway's 0
    expect(ids('route never')[0]![3]).toBe('00')
    expect(await gw.stop()).toBe(0)
    const traced = new Set(rx.spans.filter((s) => s.kind === SERVER).map((s) => s.traceId))
    expect(traced).toEqual(new Set([...always.map((m) => m[1]!), sampled.traceId]))
    for (const m of always) {
      const spans = spansOf(rx, m[1]!)
      expect(serverSpan(spans).name).toBe('GET /always')
      expect(tries(spans)).toHaveLength(1)
    }
  }, 20_000)
})

test("--workers 2: each worker exports its spans; the primary's /metrics adds up their counts", async () => {
  const rx = receiver()
  const gw = await gateway(['--workers', '2', '--port', String(freePort()), '--no-watch'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    ...FAST,
  })
  const traces: string[] = []
  for (let i = 0; i < 20; i++) {
    const c = clientTrace('01')
    traces.push(c.traceId)
    expect((await get(gw, '/echo/1', 'workers', { traceparent: c.traceparent })).status).toBe(200)
  }
  await until(
    () => new Set(rx.spans.filter((s) => s.kind === SERVER).map((s) => s.traceId)),
    (ids) => traces.every((t) => ids.has(t)),
    5_000,
    'a request span for each of the 20 traces',
  )
  // Each worker reports its counts to the primary every second.
  await until(
    () => gw.admin('/metrics').then((r) => r.text()),
    (t) => Number(/^gateway_trace_spans_total\{result="exported"\} (\d+)$/m.exec(t)?.[1] ?? 0) >= 40,
    5_000,
    "40 exported spans in the primary's /metrics",
  )
  expect(await gw.stop()).toBe(0)
}, 20_000)

test('tracing off: the client traceparent and tracestate go upstream unchanged; none is made up', async () => {
  const gw = await gateway([], {})
  const c = clientTrace()
  await get(gw, '/echo/1', 'off', { traceparent: c.traceparent, tracestate: 'vendor=abc' })
  await get(gw, '/echo/1', 'off none')
  expect(seen.get('off')).toEqual([{ traceparent: c.traceparent, tracestate: 'vendor=abc' }])
  expect(seen.get('off none')).toEqual([{ traceparent: null, tracestate: null }])
  const log = await until(
    () => gw.accessLog(),
    (l) => l.length >= 2,
    2_000,
  )
  expect(log.every((l) => !('trace_id' in l))).toBe(true)
}, 20_000)

test('the default protocol is http/protobuf to /v1/traces', async () => {
  const rx = receiver()
  const gw = await gateway(['--otlp-endpoint', `${rx.url}/`], FAST)
  const c = clientTrace()
  await get(gw, '/echo/9', 'proto', { traceparent: c.traceparent })
  const spans = await waitSpans(rx, c.traceId, 2)
  expect(rx.posts[0]).toEqual({ path: '/v1/traces', type: 'application/x-protobuf' })
  const req = serverSpan(spans)
  expect(req.parentSpanId).toBe(c.spanId)
  expect(req.attributes).toMatchObject({ 'http.route': '/echo/{id}', 'http.response.status_code': 200 })
  expect(tries(spans)[0]!.parentSpanId).toBe(req.spanId)
}, 20_000)

describe('a collector that is down never slows requests', () => {
  async function timed(gw: RunningGateway, n: number): Promise<number> {
    let worst = 0
    for (let i = 0; i < n; i++) {
      const t0 = performance.now()
      expect((await get(gw, '/echo/1', 'down', { traceparent: clientTrace().traceparent })).status).toBe(200)
      worst = Math.max(worst, performance.now() - t0)
    }
    return worst
  }

  test('refused connections: every request answers at once; the failed exports are counted', async () => {
    const gw = await gateway(['--otlp-endpoint', `http://127.0.0.1:${freePort()}`], { ...FAST, OTEL_EXPORTER_OTLP_TIMEOUT: '300' })
    expect(await timed(gw, 100)).toBeLessThan(1_000)
    await until(
      () => gw.admin('/metrics').then((r) => r.text()),
      (t) => /gateway_trace_spans_total\{result="failed"\} [1-9]/.test(t),
      10_000,
    )
    await gw.waitFor('stderr', /not taken by the collector/)
    const t0 = performance.now()
    expect(await gw.stop()).toBe(0)
    expect(performance.now() - t0).toBeLessThan(4_000)
  }, 20_000)

  test('a collector that never answers: requests are unaffected, spans past the queue are dropped and counted', async () => {
    const rx = receiver({ hang: true })
    const gw = await gateway([], {
      OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
      OTEL_BSP_MAX_QUEUE_SIZE: '8',
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '4',
      OTEL_EXPORTER_OTLP_TIMEOUT: '30000',
      ...FAST,
    })
    expect(await timed(gw, 100)).toBeLessThan(1_000)
    // The exports reach the collector (which never answers them).
    await until(
      () => rx.posts.length,
      (n) => n > 0,
      5_000,
    )
    const text = await until(
      () => gw.admin('/metrics').then((r) => r.text()),
      (t) => /gateway_trace_spans_total\{result="dropped"\} [1-9]/.test(t),
      5_000,
    )
    expect(text).not.toMatch(/result="exported"\} [1-9]/)
    // Shutdown waits for the export a bounded time, then exits.
    const t0 = performance.now()
    expect(await gw.stop()).toBe(0)
    expect(performance.now() - t0).toBeLessThan(4_000)
  }, 20_000)
})
