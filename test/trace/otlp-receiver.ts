// A local OTLP/HTTP trace receiver for tests: a Bun.serve on 127.0.0.1 that takes what an
// exporter POSTs to /v1/traces, OTLP JSON or protobuf, and keeps the spans flat. The protobuf
// side is decoded here from the wire format (field numbers of opentelemetry/proto/trace/v1),
// not with the exporter's own code, so a test sees what a collector would see.
import type { Server } from 'bun'

type Value = string | number | boolean
export interface ReceivedSpan {
  traceId: string
  spanId: string
  parentSpanId: string // '' for a root span
  traceState: string
  name: string
  kind: number // 2 server, 3 client
  attributes: Record<string, Value>
  status: { code: number; message: string } // code 2 = error
  startNs: bigint
  endNs: bigint
  resource: Record<string, Value>
}

export interface Receiver {
  url: string // base URL, as OTEL_EXPORTER_OTLP_ENDPOINT
  spans: ReceivedSpan[]
  posts: { path: string; type: string | null }[]
  stop(): void
}

export function startReceiver(opts: { hang?: boolean } = {}): Receiver {
  const spans: ReceivedSpan[] = []
  const posts: Receiver['posts'] = []
  const server: Server<undefined> = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    idleTimeout: 30,
    async fetch(req) {
      const type = req.headers.get('content-type')
      posts.push({ path: new URL(req.url).pathname, type })
      // A collector that takes the connection and never answers.
      if (opts.hang) return new Promise<Response>(() => {})
      const body = new Uint8Array(await req.arrayBuffer())
      if (type?.includes('json')) spans.push(...fromJson(JSON.parse(new TextDecoder().decode(body))))
      else spans.push(...fromProtobuf(body))
      return type?.includes('json') ? Response.json({}) : new Response(new Uint8Array(0), { headers: { 'content-type': 'application/x-protobuf' } })
    },
  })
  return { url: `http://127.0.0.1:${server.port}`, spans, posts, stop: () => void server.stop(true) }
}

// --- OTLP JSON ---
type JsonAny = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number }
type JsonKv = { key: string; value: JsonAny }
const jsonValue = (v: JsonAny): Value => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue ?? ''))
const jsonAttrs = (kvs: JsonKv[] | undefined) => Object.fromEntries((kvs ?? []).map((kv) => [kv.key, jsonValue(kv.value)]))

function fromJson(doc: any): ReceivedSpan[] {
  const out: ReceivedSpan[] = []
  for (const rs of doc.resourceSpans ?? []) {
    const resource = jsonAttrs(rs.resource?.attributes)
    for (const ss of rs.scopeSpans ?? [])
      for (const s of ss.spans ?? [])
        out.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId ?? '',
          traceState: s.traceState ?? '',
          name: s.name,
          kind: s.kind,
          attributes: jsonAttrs(s.attributes),
          status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
          startNs: BigInt(s.startTimeUnixNano),
          endNs: BigInt(s.endTimeUnixNano),
          resource,
        })
  }
  return out
}

// --- protobuf wire format ---
type Field = { n: number; wire: number; int: bigint; bytes: Uint8Array }

function* fields(buf: Uint8Array): Generator<Field> {
  let i = 0
  const varint = (): bigint => {
    let v = 0n
    let shift = 0n
    for (;;) {
      const b = buf[i++]!
      v |= BigInt(b & 0x7f) << shift
      if ((b & 0x80) === 0) return v
      shift += 7n
    }
  }
  while (i < buf.length) {
    const tag = Number(varint())
    const n = tag >> 3
    const wire = tag & 7
    if (wire === 0) yield { n, wire, int: varint(), bytes: new Uint8Array(0) }
    else if (wire === 1 || wire === 5) {
      const len = wire === 1 ? 8 : 4
      const view = new DataView(buf.buffer, buf.byteOffset + i, len)
      yield { n, wire, int: wire === 1 ? view.getBigUint64(0, true) : BigInt(view.getUint32(0, true)), bytes: buf.subarray(i, i + len) }
      i += len
    } else if (wire === 2) {
      const len = Number(varint())
      yield { n, wire, int: 0n, bytes: buf.subarray(i, i + len) }
      i += len
    } else throw new Error(`unexpected wire type ${wire}`)
  }
}

const text = (b: Uint8Array) => new TextDecoder().decode(b)
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

function anyValue(buf: Uint8Array): Value {
  for (const f of fields(buf)) {
    if (f.n === 1) return text(f.bytes)
    if (f.n === 2) return f.int !== 0n
    if (f.n === 3) return Number(BigInt.asIntN(64, f.int))
    if (f.n === 4) return new DataView(f.bytes.buffer, f.bytes.byteOffset, 8).getFloat64(0, true)
  }
  return ''
}

function keyValue(buf: Uint8Array): [string, Value] {
  let key = ''
  let value: Value = ''
  for (const f of fields(buf)) {
    if (f.n === 1) key = text(f.bytes)
    else if (f.n === 2) value = anyValue(f.bytes)
  }
  return [key, value]
}

function span(buf: Uint8Array, resource: Record<string, Value>): ReceivedSpan {
  const s: ReceivedSpan = {
    traceId: '',
    spanId: '',
    parentSpanId: '',
    traceState: '',
    name: '',
    kind: 0,
    attributes: {},
    status: { code: 0, message: '' },
    startNs: 0n,
    endNs: 0n,
    resource,
  }
  for (const f of fields(buf)) {
    if (f.n === 1) s.traceId = hex(f.bytes)
    else if (f.n === 2) s.spanId = hex(f.bytes)
    else if (f.n === 3) s.traceState = text(f.bytes)
    else if (f.n === 4) s.parentSpanId = hex(f.bytes)
    else if (f.n === 5) s.name = text(f.bytes)
    else if (f.n === 6) s.kind = Number(f.int)
    else if (f.n === 7) s.startNs = f.int
    else if (f.n === 8) s.endNs = f.int
    else if (f.n === 9) {
      const [k, v] = keyValue(f.bytes)
      s.attributes[k] = v
    } else if (f.n === 15)
      for (const g of fields(f.bytes)) {
        if (g.n === 2) s.status.message = text(g.bytes)
        else if (g.n === 3) s.status.code = Number(g.int)
      }
  }
  return s
}

function fromProtobuf(body: Uint8Array): ReceivedSpan[] {
  const out: ReceivedSpan[] = []
  for (const rs of fields(body)) {
    if (rs.n !== 1) continue
    const resource: Record<string, Value> = {}
    const scopes: Uint8Array[] = []
    for (const f of fields(rs.bytes)) {
      if (f.n === 1)
        for (const a of fields(f.bytes)) {
          if (a.n !== 1) continue
          const [k, v] = keyValue(a.bytes)
          resource[k] = v
        }
      else if (f.n === 2) scopes.push(f.bytes)
    }
    for (const ss of scopes) for (const f of fields(ss)) if (f.n === 2) out.push(span(f.bytes, resource))
  }
  return out
}
