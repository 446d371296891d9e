// `cache response`: through the real gateway to a real upstream that counts what reaches it.
// A second GET is answered from the cache (Age, Cache-Status, no upstream request); entries
// expire; apps, users and credentials never share answers; access checks and throttles still
// apply to cached answers; what may not be stored is not (non-200, non-GET, no-store, private,
// Set-Cookie, Vary: *, max-age=0, too large); Vary picks variants; HEAD is served from a GET's
// entry; the checker refuses what cannot work; two gateways share entries through Redis, and
// a Redis that goes down turns the cache into misses, never into failed requests.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes, randomUUID } from 'node:crypto'
import Redis from 'ioredis'
import { buildProgram, renderDiagnostics } from '../../src/index.ts'
import { policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem } from '../helpers/http.ts'
import { until } from '../helpers/poll.ts'
import { startRedis, type RedisServer } from '../helpers/redis-cluster.ts'

setDefaultTimeout(20_000)

const REDIS = 'redis://127.0.0.1:6379'
const PREFIX = `portcullis-test-cache-${randomUUID()}:`
const KEYS = { KEY_A: 'ka-cache-0123456789abcdef', KEY_B: 'kb-cache-0123456789abcdef' }
const BIG = 2 * 1024 * 1024
const BINARY = randomBytes(100_000)

let upstream: Upstream
let dir: string
let gw: RunningGateway
// Upstream requests by `METHOD path?query`.
const hits = new Map<string, number>()
const hitsOf = (key: string) => hits.get(key) ?? 0

// What the upstream answers, by the last path segment's prefix.
function answerFor(req: Request, n: number): Response {
  const url = new URL(req.url)
  const name = url.pathname.split('/').pop() ?? ''
  const json = (headers: Record<string, string> = {}, status = 200) =>
    Response.json(
      {
        n,
        path: url.pathname,
        query: url.search,
        consumer: req.headers.get('x-consumer'),
        lang: req.headers.get('accept-language'),
        method: req.method,
      },
      { status, headers: { 'x-upstream-n': String(n), ...headers } },
    )
  if (name.startsWith('missing')) return json({}, 404)
  if (name.startsWith('nostore')) return json({ 'cache-control': 'no-store' })
  if (name.startsWith('private')) return json({ 'cache-control': 'private, max-age=60' })
  if (name.startsWith('nocache')) return json({ 'cache-control': 'no-cache' })
  if (name.startsWith('maxage0')) return json({ 'cache-control': 'max-age=0' })
  if (name.startsWith('smaxage1')) return json({ 'cache-control': 'max-age=600, s-maxage=1' })
  if (name.startsWith('aged')) return json({ 'cache-control': 'max-age=50', age: '40' })
  if (name.startsWith('cookie')) return json({ 'set-cookie': 'session=abc; HttpOnly' })
  if (name.startsWith('varystar')) return json({ vary: '*' })
  if (name.startsWith('lang')) return json({ vary: 'Accept-Language' })
  if (name.startsWith('binary')) return new Response(BINARY, { headers: { 'content-type': 'application/octet-stream' } })
  if (name.startsWith('big')) return new Response(Buffer.alloc(BIG, n % 256), { headers: { 'content-type': 'application/octet-stream' } })
  if (name.startsWith('streamed')) {
    // No Content-Length: 2 MiB in 64 KiB chunks.
    let left = BIG
    const chunk = Buffer.alloc(64 * 1024, n % 256)
    return new Response(
      new ReadableStream({
        pull(c) {
          if (left <= 0) return c.close()
          c.enqueue(chunk)
          left -= chunk.length
        },
      }),
      { headers: { 'content-type': 'application/octet-stream' } },
    )
  }
  return json()
}

beforeAll(async () => {
  upstream = startUpstream((req) => {
    const url = new URL(req.url)
    const key = `${req.method} ${url.pathname}${url.search}`
    const n = hitsOf(key) + 1
    hits.set(key, n)
    return answerFor(req, n)
  })
  dir = policyDir({
    'main.policy': `
app app_a { api-key env KEY_A }
app app_b { api-key env KEY_B }

upstream up { target ${upstream.url} }

match GET,HEAD /items/{id} {
  cache response 30s
  proxy up
}
match GET /short/{id} {
  cache response 1s
  proxy up
}
match * /any/{id} {
  cache response 30s
  proxy up
}
match GET /renamed/{id} {
  rewrite path /items/{id}
  cache response 30s
  proxy up
}
match GET /keyed/{id} {
  require key
  cache response 30s per app
  proxy up
}
match GET /limited/{id} {
  require key
  throttle 2/min per app
  set response header X-App = app.name
  cache response 30s per app
  proxy up
}
match GET /mock {
  cache response 30s
  respond 200 json "{\\"id\\":\\"{request.id}\\"}"
}
`,
  })
  gw = await startGateway(dir, [], KEYS)
})

afterAll(async () => {
  await gw?.stop()
  upstream?.stop()
  removeDir(dir)
})

interface Got {
  status: number
  headers: Headers
  text: string
  bytes: Buffer
}

async function get(g: RunningGateway, path: string, init: RequestInit = {}): Promise<Got> {
  const res = await g.fetch(path, init)
  const bytes = Buffer.from(await res.arrayBuffer())
  return { status: res.status, headers: res.headers, text: bytes.toString('utf8'), bytes }
}

const cacheStatus = (r: Got) => r.headers.get('cache-status') ?? ''
const isHit = (r: Got) => /^portcullis; hit; ttl=\d+$/.test(cacheStatus(r))

describe('cache response (memory store)', () => {
  test('the second GET is answered from the cache: same body, Age, Cache-Status hit, no upstream request', async () => {
    const first = await get(gw, '/items/1?x=1')
    expect(first.status).toBe(200)
    expect(cacheStatus(first)).toBe('portcullis; fwd=uri-miss; stored')
    expect(first.headers.get('age')).toBeNull()
    const second = await get(gw, '/items/1?x=1')
    expect(second.status).toBe(200)
    expect(second.text).toBe(first.text)
    expect(second.headers.get('x-upstream-n')).toBe('1')
    expect(second.headers.get('age')).toBe('0')
    expect(cacheStatus(second)).toMatch(/^portcullis; hit; ttl=(29|30)$/)
    expect(second.headers.get('content-length')).toBe(String(first.bytes.length))
    expect(second.headers.get('content-type')).toBe(first.headers.get('content-type'))
    expect(hitsOf('GET /items/1?x=1')).toBe(1)
    // Each answer carries its own request id, not the stored one.
    expect(second.headers.get('x-request-id')).not.toBe(first.headers.get('x-request-id'))
    const log = await until(
      () => gw.accessLog().filter((l) => l.path === '/items/1'),
      (l) => l.length === 2,
      2_000,
      'two access log lines',
    )
    expect(log.map((l) => [l.status, l.upstream_status, l.bytes_out])).toEqual([
      [200, 200, first.bytes.length],
      [200, null, first.bytes.length],
    ])
    const metrics = await (await gw.admin('/metrics')).text()
    expect(metrics).toContain('# TYPE gateway_cache_lookups_total counter')
    expect(metrics).toContain('\ngateway_cache_lookups_total{route="GET,HEAD /items/{id}",result="miss"} ')
    expect(metrics).toContain('\ngateway_cache_lookups_total{route="GET,HEAD /items/{id}",result="hit"} ')
  })

  test('the key is the path and query after rewrites, and the route', async () => {
    await get(gw, '/items/2')
    expect(isHit(await get(gw, '/items/2'))).toBe(true)
    expect(isHit(await get(gw, '/items/2?x=1'))).toBe(false)
    expect(isHit(await get(gw, '/items/3'))).toBe(false)
    // Another route that reaches the same upstream path keeps its own entries.
    const renamed = await get(gw, '/renamed/2')
    expect(isHit(renamed)).toBe(false)
    expect(JSON.parse(renamed.text).path).toBe('/items/2')
    expect(isHit(await get(gw, '/renamed/2'))).toBe(true)
    expect(hitsOf('GET /items/2')).toBe(2)
  })

  test('Age counts the seconds since the answer was stored', async () => {
    await get(gw, '/items/age')
    const t0 = performance.now()
    const later = await until(
      () => get(gw, '/items/age'),
      (r) => r.headers.get('age') === '1',
      3_000,
      'Age 1',
    )
    expect(performance.now() - t0).toBeGreaterThanOrEqual(900)
    expect(isHit(later)).toBe(true)
    expect(hitsOf('GET /items/age')).toBe(1)
  })

  test('an entry expires after the duration: the next GET goes to the upstream again', async () => {
    await get(gw, '/short/1')
    const t0 = performance.now()
    expect(isHit(await get(gw, '/short/1'))).toBe(true)
    const fresh = await until(
      () => get(gw, '/short/1'),
      (r) => !isHit(r),
      3_000,
      'a miss after 1s',
    )
    expect(performance.now() - t0).toBeGreaterThanOrEqual(800)
    expect(fresh.headers.get('x-upstream-n')).toBe('2')
    expect(cacheStatus(fresh)).toBe('portcullis; fwd=uri-miss; stored')
  })

  test("the upstream's s-maxage (less the Age it sent) shortens the route's duration", async () => {
    await get(gw, '/items/smaxage1')
    expect(isHit(await get(gw, '/items/smaxage1'))).toBe(true)
    await until(
      () => get(gw, '/items/smaxage1'),
      (r) => !isHit(r),
      3_000,
      'a miss after s-maxage=1',
    )
    const first = await get(gw, '/items/aged')
    expect(first.headers.get('age')).toBe('40')
    const hit = await get(gw, '/items/aged')
    expect(hit.headers.get('age')).toBe('40')
    expect(cacheStatus(hit)).toMatch(/^portcullis; hit; ttl=(9|10)$/)
  })

  test('one app never gets the answer stored for another', async () => {
    const as = (key: string) => get(gw, '/keyed/1', { headers: { 'x-api-key': key } })
    const a1 = await as(KEYS.KEY_A)
    expect(JSON.parse(a1.text).consumer).toBe('app_a')
    const b1 = await as(KEYS.KEY_B)
    expect(isHit(b1)).toBe(false)
    expect(JSON.parse(b1.text).consumer).toBe('app_b')
    const a2 = await as(KEYS.KEY_A)
    const b2 = await as(KEYS.KEY_B)
    expect([isHit(a2), isHit(b2)]).toEqual([true, true])
    expect(JSON.parse(a2.text).consumer).toBe('app_a')
    expect(JSON.parse(b2.text).consumer).toBe('app_b')
    expect(hitsOf('GET /keyed/1')).toBe(2)
  })

  test('a cached answer still passes the access checks: no key or a wrong key is 401', async () => {
    expect(isHit(await get(gw, '/keyed/1', { headers: { 'x-api-key': KEYS.KEY_A } }))).toBe(true)
    const before = hitsOf('GET /keyed/1')
    const none = await gw.fetch('/keyed/1')
    await expectProblem(none, 401, 'unauthenticated')
    expect(none.headers.get('cache-status')).toBeNull()
    await expectProblem(await gw.fetch('/keyed/1', { headers: { 'x-api-key': 'wrong-key-0123456789' } }), 401, 'unauthenticated')
    expect(hitsOf('GET /keyed/1')).toBe(before)
  })

  test('a cached answer still counts against the throttle: the caller over its limit gets 429', async () => {
    const key = { headers: { 'x-api-key': KEYS.KEY_A } }
    const first = await get(gw, '/limited/1', key)
    expect([first.status, first.headers.get('ratelimit-remaining'), first.headers.get('x-app')]).toEqual([200, '1', 'app_a'])
    const second = await get(gw, '/limited/1', key)
    expect(isHit(second)).toBe(true)
    // The RateLimit headers are this request's, not the stored answer's.
    expect([second.status, second.headers.get('ratelimit-remaining'), second.headers.get('x-app')]).toEqual([200, '0', 'app_a'])
    const third = await gw.fetch('/limited/1', key)
    await expectProblem(third, 429, 'rate_limited')
    expect(third.headers.get('retry-after')).not.toBeNull()
    expect(hitsOf('GET /limited/1')).toBe(1)
    // Another app has its own limit and its own entry.
    const b = await get(gw, '/limited/1', { headers: { 'x-api-key': KEYS.KEY_B } })
    expect([b.status, isHit(b), b.headers.get('x-app')]).toEqual([200, false, 'app_b'])
  })

  test('credentials the upstream gets (Authorization, Cookie) are part of the key', async () => {
    const as = (h: Record<string, string>) => get(gw, '/items/cred', { headers: h })
    await as({ authorization: 'Bearer one' })
    expect(isHit(await as({ authorization: 'Bearer two' }))).toBe(false)
    expect(isHit(await as({}))).toBe(false)
    expect(isHit(await as({ cookie: 'sid=1' }))).toBe(false)
    expect(isHit(await as({ authorization: 'Bearer one' }))).toBe(true)
    expect(isHit(await as({ cookie: 'sid=1' }))).toBe(true)
    expect(hitsOf('GET /items/cred')).toBe(4)
  })

  test.each([
    ['/items/missing', 'status'],
    ['/items/nostore', 'cache-control'],
    ['/items/private', 'cache-control'],
    ['/items/nocache', 'cache-control'],
    ['/items/maxage0', 'cache-control'],
    ['/items/cookie', 'set-cookie'],
    ['/items/varystar', 'vary'],
  ])('%s is not stored (%s)', async (path, why) => {
    const first = await get(gw, path)
    const second = await get(gw, path)
    expect(cacheStatus(first)).toBe(`portcullis; fwd=uri-miss; detail=${why}`)
    expect(cacheStatus(second)).toBe(`portcullis; fwd=uri-miss; detail=${why}`)
    expect(second.headers.get('x-upstream-n')).toBe('2')
    expect(hitsOf(`GET ${path}`)).toBe(2)
  })

  test('other methods go to the upstream and never get a GET answer; a GET never gets theirs', async () => {
    const post = () => get(gw, '/any/p', { method: 'POST', body: 'x' })
    const p1 = await post()
    expect(cacheStatus(p1)).toBe('portcullis; fwd=method')
    await post()
    expect(hitsOf('POST /any/p')).toBe(2)
    const g1 = await get(gw, '/any/p')
    expect(JSON.parse(g1.text).method).toBe('GET')
    expect(isHit(await get(gw, '/any/p'))).toBe(true)
    const p3 = await post()
    expect([JSON.parse(p3.text).method, hitsOf('POST /any/p')]).toEqual(['POST', 3])
    const del = await get(gw, '/any/p', { method: 'DELETE' })
    expect(JSON.parse(del.text).method).toBe('DELETE')
  })

  test('HEAD is answered from a GET entry; a HEAD miss stores nothing', async () => {
    const g1 = await get(gw, '/items/head')
    const head = await gw.fetch('/items/head', { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(head.headers.get('cache-status')).toMatch(/^portcullis; hit/)
    expect(head.headers.get('content-length')).toBe(String(g1.bytes.length))
    expect((await head.arrayBuffer()).byteLength).toBe(0)
    expect(hitsOf('HEAD /items/head')).toBe(0)

    const h1 = await gw.fetch('/items/head2', { method: 'HEAD' })
    expect(h1.headers.get('cache-status')).toBe('portcullis; fwd=uri-miss; detail=head')
    expect(isHit(await get(gw, '/items/head2'))).toBe(false)
    expect([hitsOf('HEAD /items/head2'), hitsOf('GET /items/head2')]).toEqual([1, 1])
  })

  test('Vary: each variant of the named request headers has its own entry', async () => {
    const as = (lang: string) => get(gw, '/items/lang', { headers: { 'accept-language': lang } })
    const en = await as('en')
    const fr = await as('fr')
    expect(cacheStatus(fr)).toBe('portcullis; fwd=vary-miss; stored')
    const en2 = await as('en')
    const fr2 = await as('fr')
    expect([isHit(en2), isHit(fr2)]).toEqual([true, true])
    expect([JSON.parse(en2.text).lang, JSON.parse(fr2.text).lang]).toEqual(['en', 'fr'])
    expect(en2.text).toBe(en.text)
    expect(hitsOf('GET /items/lang')).toBe(2)
  })

  test('binary answers come back byte for byte, again and again', async () => {
    const first = await get(gw, '/items/binary')
    expect(first.bytes.equals(BINARY)).toBe(true)
    for (let i = 0; i < 3; i++) {
      const again = await get(gw, '/items/binary')
      expect(isHit(again)).toBe(true)
      expect(again.bytes.equals(BINARY)).toBe(true)
    }
    expect(hitsOf('GET /items/binary')).toBe(1)
  })

  test('answers over 1mb stream through whole and unstored, with or without Content-Length', async () => {
    for (const path of ['/items/big', '/items/streamed']) {
      for (const n of [1, 2]) {
        const r = await get(gw, path)
        expect(r.status).toBe(200)
        expect(r.bytes.length).toBe(BIG)
        expect(r.bytes.every((b) => b === n)).toBe(true)
        expect(cacheStatus(r)).toBe('portcullis; fwd=uri-miss; detail=too-large')
      }
      expect(hitsOf(`GET ${path}`)).toBe(2)
    }
    const log = await until(
      () => gw.accessLog().filter((l) => l.path === '/items/streamed'),
      (l) => l.length === 2,
      2_000,
      'two access log lines',
    )
    expect(log.map((l) => l.bytes_out)).toEqual([BIG, BIG])
  })

  test('a `respond` answer is cached too', async () => {
    const first = await get(gw, '/mock')
    const second = await get(gw, '/mock')
    expect(isHit(second)).toBe(true)
    expect(second.text).toBe(first.text)
  })
})

describe('cache response: the checker', () => {
  const check = async (routes: string) => {
    const d = policyDir({ 'p.policy': `app a { api-key env K }\nupstream up { target http://127.0.0.1:9 }\n${routes}` })
    try {
      const built = await buildProgram(d, { env: { K: 'key-0123456789abcdef' } })
      return built.diagnostics ? renderDiagnostics(built.diagnostics) : ''
    } finally {
      removeDir(d)
    }
  }

  test('a route that identifies apps must say per app', async () => {
    const out = await check('match GET /x {\n  require key\n  cache response 30s\n  proxy up\n}\n')
    expect(out).toContain("p.policy:5:3: error: the route GET /x identifies apps: write 'cache response … per app'")
    expect(await check('match GET /x {\n  require key\n  cache response 30s per app\n  proxy up\n}\n')).toBe('')
  })

  test('per app needs a route that identifies apps', async () => {
    const out = await check('match GET /x {\n  cache response 30s per app\n  proxy up\n}\n')
    expect(out).toContain("p.policy:4:22: error: 'cache response … per app' needs a route that identifies the caller's app")
  })

  test('a route without GET, bad durations and keys, and defaults are refused', async () => {
    expect(await check('match POST /x {\n  cache response 30s\n  proxy up\n}\n')).toContain(
      "p.policy:4:3: error: 'cache response' keeps answers to GET; the route POST /x takes no GET",
    )
    expect(await check('match GET /x {\n  cache response\n  proxy up\n}\n')).toContain("'cache response' expects a duration like 30s")
    expect(await check('match GET /x {\n  cache response 0s\n  proxy up\n}\n')).toContain('a duration must be more than zero')
    expect(await check('match GET /x {\n  cache response 30s per user\n  proxy up\n}\n')).toContain(
      "p.policy:4:26: error: 'cache response' is kept per app only, found 'per user'",
    )
    expect(await check('defaults {\n  cache response 30s\n}\nmatch GET /x { proxy up }\n')).toContain(
      "p.policy:4:3: error: 'cache response' cannot be used in defaults; it belongs in a route",
    )
  })
})

describe('cache response with Redis', () => {
  const gateways: RunningGateway[] = []
  let redisDir: string
  const policy = () => `
upstream up { target ${upstream.url} }
match GET /r/{id} {
  cache response 30s
  proxy up
}
`
  beforeAll(() => {
    redisDir = policyDir({ 'main.policy': policy() })
  })
  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()))
    removeDir(redisDir)
    const r = new Redis(REDIS, { lazyConnect: true, maxRetriesPerRequest: 1 })
    const keys = await r.keys(`${PREFIX}*`)
    if (keys.length) await r.del(...keys)
    r.disconnect()
  })
  const gateway = async (args: string[]) => {
    const g = await startGateway(redisDir, ['--no-watch', ...args])
    gateways.push(g)
    return g
  }

  test('two gateways on one Redis share entries: stored by one, answered by the other', async () => {
    const one = await gateway(['--redis', REDIS, '--redis-prefix', PREFIX])
    const two = await gateway(['--redis', REDIS, '--redis-prefix', PREFIX])
    const first = await get(one, '/r/shared')
    expect(cacheStatus(first)).toBe('portcullis; fwd=uri-miss; stored')
    const second = await get(two, '/r/shared')
    expect(isHit(second)).toBe(true)
    expect(second.text).toBe(first.text)
    expect(second.headers.get('age')).not.toBeNull()
    expect(hitsOf('GET /r/shared')).toBe(1)
    // Binary bodies survive Redis.
    await get(one, '/r/binary')
    const bin = await get(two, '/r/binary')
    expect([isHit(bin), bin.bytes.equals(BINARY)]).toEqual([true, true])
    // One key per entry under the prefix, expiring with the route's duration.
    const r = new Redis(REDIS)
    const keys = await r.keys(`${PREFIX}cache:*`)
    expect(keys.length).toBe(2)
    for (const k of keys) {
      expect(k).toMatch(new RegExp(`^${PREFIX}cache:[0-9a-f]{64}$`))
      const pttl = await r.pttl(k)
      expect(pttl).toBeGreaterThan(20_000)
      expect(pttl).toBeLessThanOrEqual(30_000)
    }
    r.disconnect()
  })

  describe('a Redis that goes down and comes back', () => {
    let redis: RedisServer
    let g: RunningGateway
    beforeAll(async () => {
      redis = await startRedis()
      g = await gateway(['--redis', redis.url, '--redis-prefix', `${PREFIX}own:`])
    })
    afterAll(async () => {
      await redis?.stop()
    })

    test('down: every answer comes from the upstream, promptly; back: caching resumes by itself', async () => {
      await get(g, '/r/down')
      expect(isHit(await get(g, '/r/down'))).toBe(true)
      await redis.kill()
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now()
        const r = await get(g, '/r/down')
        expect(r.status).toBe(200)
        expect(cacheStatus(r)).toBe('portcullis; fwd=uri-miss')
        expect(performance.now() - t0).toBeLessThan(1_000)
      }
      expect(hitsOf('GET /r/down')).toBe(6)
      expect(await (await g.admin('/metrics')).text()).toMatch(/\ngateway_cache_lookups_total\{route="[^"]*",result="error"\} 5\n/)
      await g.waitFor('stderr', /cache response: .*answering from the upstreams until redis is back/)
      await redis.restart()
      const back = await until(
        () => get(g, '/r/down'),
        (r) => isHit(r),
        8_000,
        'a hit once redis is back',
      )
      expect(back.status).toBe(200)
      await g.waitFor('stderr', /cache response: redis answers again/)
    })
  })
})
