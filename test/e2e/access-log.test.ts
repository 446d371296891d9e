// The access log of the real gateway process: one JSON object per request and line on
// stdout, exactly the contract's fields, redaction, request ids, byte counts, the pretty
// format, and nothing lost on SIGTERM.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { echo, policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'

const FIELDS = [
  'time',
  'request_id',
  'method',
  'path',
  'query',
  'route',
  'status',
  'gateway_error',
  'app',
  'user',
  'ip',
  'upstream',
  'upstream_status',
  'duration_ms',
  'upstream_ms',
  'bytes_in',
  'bytes_out',
]

const CHUNKS = ['alpha,', 'beta-beta,', 'gamma-gamma-gamma,', 'é✓ done\n']
let up: Upstream
let slowishArrived = 0
let gw: RunningGateway
let dir: string

beforeAll(async () => {
  up = startUpstream(async (req) => {
    const path = new URL(req.url).pathname
    if (path === '/chunked') {
      let i = 0
      const enc = new TextEncoder()
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (i === CHUNKS.length) return c.close()
          await Bun.sleep(5)
          c.enqueue(enc.encode(CHUNKS[i++]!))
        },
      })
      return new Response(body, { headers: { 'content-type': 'text/plain' } })
    }
    if (path.startsWith('/slowish/')) {
      slowishArrived++
      await Bun.sleep(300)
    }
    return echo(req)
  })
  dir = policyDir({
    'main.policy': `upstream api { target ${up.url} }
match GET /api/{id} { rewrite path /items/{id}; proxy api }
match POST /upload { proxy api }
match GET /chunked { proxy api }
match GET /down { proxy http://127.0.0.1:1 }
match GET /slowish/{n} { proxy api }
match GET,HEAD /hello { respond 200 text "hello" }
`,
  })
  gw = await startGateway(dir)
})
afterAll(async () => {
  await gw?.stop()
  up?.stop()
  removeDir(dir)
})

// Waits for the one access-log entry with this field value (lines are written once the body is delivered).
async function entryFor(g: RunningGateway, value: string, field = 'request_id'): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 2_000
  for (;;) {
    const hit = g.accessLog().filter((e) => e[field] === value)
    if (hit.length) {
      expect(hit).toHaveLength(1)
      return hit[0]!
    }
    if (Date.now() > deadline) throw new Error(`no access log line with ${field} = ${value}:\n${g.stdout.join('\n')}`)
    await Bun.sleep(10)
  }
}

describe('JSON lines', () => {
  test('a proxied request: exactly the contract fields, with exact values', async () => {
    const res = await gw.fetch('/api/42?page=2&q=x')
    expect(res.status).toBe(200)
    const seen = (await res.json()) as { headers: Record<string, string>; path: string }
    const text = JSON.stringify(seen)
    const id = seen.headers['x-request-id']!
    expect(id).toMatch(/^[A-Za-z0-9._:\-]{1,128}$/) // the X-Request-Id form; the generated form: test/runtime/request-id.test.ts
    const e = await entryFor(gw, id)
    expect(Object.keys(e).sort()).toEqual([...FIELDS].sort())
    expect(e).toMatchObject({
      request_id: id,
      method: 'GET',
      path: '/api/42',
      query: 'page=2&q=x',
      route: 'GET /api/{id}',
      status: 200,
      gateway_error: null,
      app: null,
      user: null,
      ip: '127.0.0.1',
      upstream: up.url,
      upstream_status: 200,
      bytes_in: 0,
      bytes_out: Buffer.byteLength(text),
    })
    expect(Math.abs(Date.parse(e.time as string) - Date.now())).toBeLessThan(5_000)
    expect(e.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    expect(typeof e.duration_ms).toBe('number')
    expect(typeof e.upstream_ms).toBe('number')
    expect(e.upstream_ms as number).toBeLessThanOrEqual(e.duration_ms as number)
    // The line itself is one compact JSON object.
    const line = gw.stdout.find((l) => l.includes(id))!
    expect(JSON.parse(line)).toEqual(e)
  })

  test('query values of sensitive parameters are redacted; the path has no query', async () => {
    const q =
      'token=t1&page=2&api_key=k1&Signature=s1&sig=s2&code=c1&password=p1&client_secret=s3&auth=a1&X-Amz-Credential=cr&q=keep&flag&%74oken=enc&API%5FKEY=k2'
    const res = await gw.fetch(`/api/redact?${q}`)
    await res.arrayBuffer()
    const e = await entryFor(gw, '/api/redact', 'path')
    expect(e.query).toBe(
      'token=[redacted]&page=2&api_key=[redacted]&Signature=[redacted]&sig=[redacted]&code=[redacted]' +
        '&password=[redacted]&client_secret=[redacted]&auth=[redacted]&X-Amz-Credential=cr&q=keep&flag&%74oken=[redacted]&API%5FKEY=[redacted]',
    )
  })

  test('a gateway error: request_id is the problem body instance, route and upstream are null', async () => {
    const res = await gw.fetch('/nowhere/at/all?x=1')
    expect(res.status).toBe(404)
    const problem = (await res.json()) as { instance: string }
    expect(res.headers.get('x-request-id')).toBe(problem.instance)
    const e = await entryFor(gw, problem.instance)
    expect(e).toMatchObject({
      method: 'GET',
      path: '/nowhere/at/all',
      query: 'x=1',
      route: null,
      status: 404,
      gateway_error: 'no_route',
      upstream: null,
      upstream_status: null,
      upstream_ms: null,
      bytes_in: 0,
      bytes_out: Buffer.byteLength(JSON.stringify(problem)),
    })
  })

  test('an unreachable upstream: 502 bad_gateway, upstream named, no upstream status', async () => {
    const res = await gw.fetch('/down')
    expect(res.status).toBe(502)
    const problem = (await res.json()) as { instance: string }
    const e = await entryFor(gw, problem.instance)
    expect(e).toMatchObject({
      path: '/down',
      route: 'GET /down',
      status: 502,
      gateway_error: 'bad_gateway',
      upstream: 'http://127.0.0.1:1',
      upstream_status: null,
    })
    expect(typeof e.upstream_ms).toBe('number')
  })

  test('an answer from the gateway itself (respond)', async () => {
    const res = await gw.fetch('/hello')
    expect(await res.text()).toBe('hello')
    const e = await entryFor(gw, '/hello', 'path')
    expect(e).toMatchObject({ route: 'GET,HEAD /hello', status: 200, upstream: null, upstream_status: null, bytes_out: 5 })
  })

  test('a HEAD answer sends no body: bytes_out is 0 whatever Content-Length says', async () => {
    const res = await gw.fetch('/hello?head=1', { method: 'HEAD' })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-length')).toBe('5')
    expect(await res.text()).toBe('')
    const e = await entryFor(gw, 'head=1', 'query')
    expect(e).toMatchObject({ method: 'HEAD', path: '/hello', status: 200, bytes_out: 0 })
  })

  test('bytes_out counts a chunked upstream body', async () => {
    const res = await gw.fetch('/chunked')
    expect(res.headers.get('content-length')).toBeNull()
    const body = new Uint8Array(await res.arrayBuffer())
    expect(new TextDecoder().decode(body)).toBe(CHUNKS.join(''))
    const e = await entryFor(gw, '/chunked', 'path')
    expect(e.bytes_out).toBe(body.byteLength)
    expect(e.bytes_out).toBe(Buffer.byteLength(CHUNKS.join('')))
  })

  test('bytes_in counts a request body', async () => {
    const payload = 'x'.repeat(1234)
    const res = await gw.fetch('/upload', { method: 'POST', body: payload, headers: { 'content-type': 'text/plain' } })
    const seen = (await res.json()) as { body: string; headers: Record<string, string> }
    expect(seen.body).toBe(payload)
    const e = await entryFor(gw, seen.headers['x-request-id']!)
    expect(e).toMatchObject({ method: 'POST', route: 'POST /upload', bytes_in: 1234 })
  })

  test('no secret reaches the log: Authorization header and api_key value', async () => {
    const res = await gw.fetch('/api/secrets?api_key=abc&other=1', {
      headers: { authorization: 'Bearer secret123', cookie: 'session=cookie-secret-77' },
    })
    const seen = (await res.json()) as { headers: Record<string, string> }
    expect(seen.headers.authorization).toBe('Bearer secret123') // forwarded, not logged
    const e = await entryFor(gw, seen.headers['x-request-id']!)
    expect(e.query).toBe('api_key=[redacted]&other=1')
    await Bun.sleep(50)
    for (const line of [...gw.stdout, ...gw.stderr]) {
      expect(line).not.toContain('secret123')
      expect(line).not.toContain('cookie-secret-77')
      expect(line).not.toContain('api_key=abc')
    }
  })

  test('every request is one line, and every stdout line but the readiness line is a JSON object', async () => {
    const before = gw.accessLog().length
    const ids = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const res = await gw.fetch(`/api/many-${i}`)
        return ((await res.json()) as { headers: Record<string, string> }).headers['x-request-id']!
      }),
    )
    for (const id of ids) await entryFor(gw, id)
    expect(gw.accessLog().length).toBe(before + 20)
    expect(gw.stdout.filter((l) => !l.startsWith('{'))).toEqual([`portcullis listening on ${gw.url}`])
  })
})

describe('pretty format', () => {
  test('--log-format pretty prints one human line per request', async () => {
    const d = policyDir({ 'main.policy': `upstream api { target ${up.url} }\nmatch GET /api/{id} { proxy api }\n` })
    const g = await startGateway(d, ['--log-format', 'pretty'])
    try {
      const res = await g.fetch('/api/5?token=tk&x=1')
      const id = ((await res.json()) as { headers: Record<string, string> }).headers['x-request-id']!
      const line = await g.waitFor('stdout', new RegExp(`id=${id}`), 2_000)
      expect(() => JSON.parse(line)).toThrow()
      expect(line).toContain(' 200 ')
      expect(line).toContain('GET /api/5?token=[redacted]&x=1')
      expect(line).toContain('[GET /api/{id}]')
      expect(line).not.toContain('tk&')
      expect(g.stdout.filter((l) => l.startsWith('{'))).toEqual([])
    } finally {
      await g.stop()
      removeDir(d)
    }
  })
})

describe('nothing is lost on SIGTERM', () => {
  async function settledLog(g: RunningGateway, expected: number): Promise<Record<string, unknown>[]> {
    // After exit, give the pipe reader a moment to hand over the last lines.
    const deadline = Date.now() + 2_000
    while (g.accessLog().length < expected && Date.now() < deadline) await Bun.sleep(20)
    await Bun.sleep(50)
    return g.accessLog()
  }

  test('N requests answered, SIGTERM at once: N lines', async () => {
    const d = policyDir({ 'main.policy': `upstream api { target ${up.url} }\nmatch GET /api/{id} { proxy api }\n` })
    const g = await startGateway(d)
    try {
      const N = 300
      const statuses: number[] = []
      for (let batch = 0; batch < N / 50; batch++) {
        statuses.push(
          ...(await Promise.all(
            Array.from({ length: 50 }, async (_, i) => {
              const res = await g.fetch(`/api/${batch * 50 + i}`)
              await res.arrayBuffer()
              return res.status
            }),
          )),
        )
      }
      g.proc.kill('SIGTERM')
      expect(await g.proc.exited).toBe(0)
      expect(statuses.filter((s) => s === 200)).toHaveLength(N)
      const log = await settledLog(g, N)
      expect(log).toHaveLength(N)
      expect(new Set(log.map((e) => e.path)).size).toBe(N)
    } finally {
      await g.stop()
      removeDir(d)
    }
  }, 15_000)

  test('requests still in flight at SIGTERM are answered and logged', async () => {
    const d = policyDir({ 'main.policy': `upstream api { target ${up.url} }\nmatch GET /slowish/{n} { proxy api }\n` })
    const g = await startGateway(d)
    try {
      const N = 40
      const arrived0 = slowishArrived
      const pending = Array.from({ length: N }, async (_, i) => {
        const res = await g.fetch(`/slowish/${i}`)
        await res.arrayBuffer()
        return res.status
      })
      // SIGTERM once every request has reached the upstream, which holds each for 300 ms.
      const deadline = Date.now() + 3_000
      while (slowishArrived - arrived0 < N && Date.now() < deadline) await Bun.sleep(5)
      expect(slowishArrived - arrived0).toBe(N)
      g.proc.kill('SIGTERM')
      expect(await Promise.all(pending)).toEqual(Array(N).fill(200))
      expect(await g.proc.exited).toBe(0)
      const log = await settledLog(g, N)
      expect(log.map((e) => e.status)).toEqual(Array(N).fill(200))
    } finally {
      await g.stop()
      removeDir(d)
    }
  }, 15_000)
})
