// The access log in process: lines round-trip through JSON whatever their strings hold, the
// pretty line, query redaction, and the writer's batching (one sink write per interval, nothing
// lost on flush or on exit).
import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { AccessLog, redactQuery, stdoutWriter, type LogSink } from '../../src/log/access-log.ts'
import type { AccessLogEntry } from '../../src/runtime/context.ts'

const entry = (over: Partial<AccessLogEntry> = {}): AccessLogEntry => ({
  time: '2026-01-02T03:04:05.678Z',
  request_id: 'abc-1',
  method: 'GET',
  path: '/api/1',
  query: 'page=2',
  route: 'GET /api/{id}',
  status: 200,
  gateway_error: null,
  app: null,
  user: null,
  ip: '127.0.0.1',
  upstream: 'http://127.0.0.1:9000',
  upstream_status: 200,
  duration_ms: 1.25,
  upstream_ms: 0.5,
  bytes_in: 0,
  bytes_out: 11,
  ...over,
})

function collect(format: 'json' | 'pretty' = 'json'): { log: AccessLog; lines: string[] } {
  const lines: string[] = []
  return { log: new AccessLog({ write: (l) => void lines.push(l), flush: () => {} }, format), lines }
}

const TRICKY = [
  'plain',
  '',
  'say "hi"',
  'back\\slash\\',
  'tab\there\nnew line\r\u0000\u0001\u001f\u007f',
  'é✓ 日本語 \u2028\u2029',
  'emoji 😀 pair',
  'lone \ud800 high',
  'lone \udc00 low',
  '\udc00\ud800 reversed',
  '</script>',
]

describe('JSON lines', () => {
  test('one line per entry, the same text JSON.stringify gives, parsing back to the entry', () => {
    const { log, lines } = collect()
    const entries = TRICKY.flatMap((s) => [
      entry({ path: s, query: s, user: s, app: s, ip: s, request_id: s, gateway_error: s, route: s, upstream: s }),
    ])
    for (const e of entries) log.write(e)
    expect(lines).toHaveLength(entries.length)
    lines.forEach((line, i) => {
      expect(line.endsWith('\n')).toBe(true)
      expect(line.indexOf('\n')).toBe(line.length - 1) // control characters are escaped
      expect(line).toBe(`${JSON.stringify(entries[i])}\n`)
      expect(JSON.parse(line)).toEqual(entries[i]!)
    })
  })

  test('null and numbers are written as JSON writes them', () => {
    const { log, lines } = collect()
    const e = entry({
      route: null,
      upstream: null,
      upstream_status: null,
      upstream_ms: null,
      duration_ms: 0.1 + 0.2,
      bytes_out: 1e21,
      bytes_in: -0,
      status: NaN,
    })
    log.write(e)
    expect(lines[0]).toBe(`${JSON.stringify(e)}\n`)
    const back = JSON.parse(lines[0]!)
    expect(back).toMatchObject({
      route: null,
      upstream: null,
      upstream_status: null,
      upstream_ms: null,
      duration_ms: 0.1 + 0.2,
      bytes_out: 1e21,
      bytes_in: 0,
      status: null,
    })
  })

  test('the contract fields come first, in order; fields a log stage added follow', () => {
    const { log, lines } = collect()
    const e = entry()
    e.extra = 'x"y'
    e.count = 3
    log.write(e)
    const keys = Object.keys(JSON.parse(lines[0]!))
    expect(keys.slice(-2)).toEqual(['extra', 'count'])
    expect(keys.slice(0, 3)).toEqual(['time', 'request_id', 'method'])
  })
})

describe('pretty lines', () => {
  test('one human line, query after the path, route, upstream and id', () => {
    const { log, lines } = collect('pretty')
    log.write(entry({ gateway_error: 'bad_gateway', status: 502, upstream_status: null }))
    log.write(entry({ route: null, upstream: null, query: '' }))
    expect(lines[0]).toBe(
      '2026-01-02T03:04:05.678Z 502 bad_gateway GET /api/1?page=2 [GET /api/{id}] 127.0.0.1 1.25ms -> http://127.0.0.1:9000 - 0.5ms id=abc-1\n',
    )
    expect(lines[1]).toBe('2026-01-02T03:04:05.678Z 200 GET /api/1 [no route] 127.0.0.1 1.25ms id=abc-1\n')
  })
})

describe('redactQuery', () => {
  test('values of sensitive names, plain or percent-encoded, are redacted; the rest is untouched', () => {
    expect(redactQuery('')).toBe('')
    expect(redactQuery('page=2&q=x')).toBe('page=2&q=x')
    expect(redactQuery('api_key=k&page=2&%74oken=t&flag&Auth=a')).toBe('api_key=[redacted]&page=2&%74oken=[redacted]&flag&Auth=[redacted]')
    expect(redactQuery('%zz=1&password=p')).toBe('%zz=1&password=[redacted]')
  })
})

function fakeSink(): LogSink & { chunks: string[]; flushes: number; written(): Promise<void> } {
  let wake: (() => void) | null = null
  const sink = {
    chunks: [] as string[],
    flushes: 0,
    write(chunk: string) {
      sink.chunks.push(chunk)
      wake?.()
    },
    flush() {
      sink.flushes++
    },
    // The next write.
    written: () => new Promise<void>((resolve) => (wake = resolve)),
  }
  return sink
}

describe('the writer', () => {
  test('lines written within the flush interval reach the sink as one write, in order, after it', async () => {
    const sink = fakeSink()
    const w = stdoutWriter(sink, 20)
    const started = performance.now()
    const first = sink.written()
    for (let i = 0; i < 100; i++) w.write(`line ${i}\n`)
    await new Promise((r) => setImmediate(r))
    expect(sink.chunks).toEqual([]) // not at the end of the turn
    await first
    expect(performance.now() - started).toBeGreaterThanOrEqual(15)
    expect(sink.chunks).toEqual([Array.from({ length: 100 }, (_, i) => `line ${i}\n`).join('')])
    const second = sink.written()
    w.write('next\n')
    await second
    expect(sink.chunks).toEqual([expect.any(String), 'next\n'])
  })

  test('a large batch is written at once, without waiting for the turn to end', () => {
    const sink = fakeSink()
    const w = stdoutWriter(sink)
    const line = `${'x'.repeat(999)}\n`
    for (let i = 0; i < 70; i++) w.write(line)
    expect(sink.chunks).toHaveLength(1)
    expect(sink.chunks[0]).toBe(line.repeat(66)) // 64 Ki characters reached on the 66th line
  })

  test('flush() writes what is pending and flushes the sink', async () => {
    const sink = fakeSink()
    const w = stdoutWriter(sink)
    w.write('a\n')
    w.write('b\n')
    await w.flush()
    expect(sink.chunks).toEqual(['a\nb\n'])
    expect(sink.flushes).toBeGreaterThanOrEqual(1)
    await Bun.sleep(20) // the flush interval has passed: nothing more is written
    expect(sink.chunks).toEqual(['a\nb\n'])
  })

  test('stdout: nothing is lost by flush() at shutdown, nor by an exit without it', async () => {
    const mod = JSON.stringify(join(import.meta.dir, '../../src/log/access-log.ts'))
    const run = async (end: string) => {
      const script = `const { stdoutWriter } = await import(${mod}); const w = stdoutWriter(); for (let i = 0; i < 5000; i++) w.write('line ' + i + '\\n'); ${end}`
      const proc = Bun.spawn([process.execPath, '-e', script], { stdout: 'pipe', stderr: 'inherit' })
      const out = await new Response(proc.stdout).text()
      expect(await proc.exited).toBe(0)
      return out
    }
    const expected = Array.from({ length: 5000 }, (_, i) => `line ${i}\n`).join('')
    expect(await run('await w.flush()')).toBe(expected)
    expect(await run('process.exit(0)')).toBe(expected)
  })
})
