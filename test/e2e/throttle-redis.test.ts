// `throttle` and `quota` shared through Redis, through real gateways: two instances on one
// Redis and two on a local 3-master Redis Cluster admit exactly the limit in total; `--workers 2`
// with --redis likewise; keys never collide and are namespaced and expiring; a reload continues
// the shared counters; a redis-server of the test's own is flushed of its scripts, killed
// mid-traffic (fail-open, fail-closed and `on store-failure deny`, each within 1 s) and
// restarted (limiting resumes by itself).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomUUID } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Redis from 'ioredis'
import { signRequest } from '../../docs/sign-request.ts'
import { ADMIN_TOKEN, policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream, freePort } from '../helpers/gateway.ts'
import {
  answer,
  COLLIDING,
  expectAtMostPerWindow,
  expectRateHeaders,
  expectRefused,
  series,
  statuses,
  until,
  volley,
  type Answer,
} from '../helpers/limits.ts'
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../helpers/redis-cluster.ts'

const REDIS = 'redis://127.0.0.1:6379'
const PREFIX = `portcullis-test-throttle-${randomUUID()}:`
const SIGNER_SECRET = 'throttle-redis-secret-0123456789abcdef'
const KEYS = { KEY_A: 'ka-throttle-redis-0123456789', KEY_B: 'kb-throttle-redis-0123456789' }
const ENV = { SIGNER_SECRET, ...KEYS }
// Gateways start in well under a second, a Cluster in about two; a loaded machine gets room.
setDefaultTimeout(20_000)

let upstream: Upstream
let dir: string
const hits = new Map<string, number>() // upstream requests by path
const gateways: RunningGateway[] = []

const policy = (extra = '') => `
app signer {
  key "ak_signer"
  secret env SIGNER_SECRET
}
app app_a { api-key env KEY_A }
app app_b { api-key env KEY_B }

upstream up { target ${upstream.url} }

match GET /ping { respond 200 text "pong" }
match GET /signed {
  require hmac
  throttle 20/min per app
  proxy up
}
match GET /keyed {
  require key
  throttle 20/min per app
  proxy up
}
match GET /early {
  require key
  throttle 4/min per ip
  proxy up
}
match GET /tenant {
  throttle 1/min per header X-Tenant
  proxy up
}
match GET /two {
  throttle 5/min per ip
  throttle 3/min per header X-K
  quota 100/day per ip
  proxy up
}
match GET /window {
  throttle 3/s per ip
  proxy up
}
match GET /reloaded {
  require key
  throttle 4/min per app
  proxy up
}
match GET /open {
  throttle 3/min per ip
  proxy up
}
match GET /closed {
  quota 3/day per ip
  proxy up
}
match GET /strict {
  throttle 3/min per ip
  on store-failure deny
  proxy up
}
${extra}`

beforeAll(() => {
  upstream = startUpstream((req) => {
    const path = new URL(req.url).pathname
    hits.set(path, (hits.get(path) ?? 0) + 1)
    return new Response('ok')
  })
  dir = policyDir({ 'main.policy': policy() })
})

afterAll(async () => {
  await Promise.all(gateways.map((g) => g.stop()))
  upstream?.stop()
  removeDir(dir)
  const redis = new Redis(REDIS, { lazyConnect: true, maxRetriesPerRequest: 1 })
  const keys = await redis.keys(`${PREFIX}*`)
  if (keys.length) await redis.del(...keys)
  redis.disconnect()
})

async function gateway(args: string[]): Promise<RunningGateway> {
  const g = await startGateway(dir, ['--trust-proxy', '127.0.0.1/32', '--no-watch', ...args], ENV)
  gateways.push(g)
  return g
}

const hitsOn = (path: string) => hits.get(path) ?? 0
const admittedOf = (answers: readonly Answer[]) => answers.filter((a) => a.status === 200)
const fromIp = (g: RunningGateway, ip: string, path: string, headers: Record<string, string> = {}) =>
  g.fetch(path, { headers: { 'x-forwarded-for': ip, ...headers } })

// 200 signed requests at once, alternating between the gateways: exactly 20 admitted in
// total, each with its own Remaining (19…0: one shared counter), the rest 429.
async function twoHundredSigned(gws: RunningGateway[]): Promise<number> {
  const before = hitsOn('/signed')
  const urls = Array.from({ length: 200 }, (_, i) => `${gws[i % gws.length]!.url}/signed`)
  const signed = await Promise.all(urls.map((u) => signRequest('GET', u, { keyid: 'ak_signer', secret: SIGNER_SECRET })))
  const answers = await volley(200, (i) => fetch(urls[i]!, { headers: signed[i] }))
  // `require hmac` claims each nonce in Redis first and fails closed (503 store_unavailable,
  // before any limit) when that claim is slow: on a loaded machine a few may; they are not
  // the limiter's (a throttle fails open, which would show as a 21st admission).
  const unclaimed = answers.filter((a) => a.status === 503)
  for (const a of unclaimed) {
    expect(a.code).toBe('store_unavailable')
    expect(a.headers.get('ratelimit-limit')).toBeNull()
  }
  expect(statuses(answers.filter((a) => a.status !== 503))).toEqual({ 200: 20, 429: 180 - unclaimed.length })
  expect(hitsOn('/signed') - before).toBe(20)
  const policyLine = '"throttle";q=20;w=60'
  const left = admittedOf(answers).map((a) => expectRateHeaders(a, { limit: 20, name: 'throttle', policy: policyLine, maxReset: 60 }).remaining)
  expect(left.sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i))
  for (const a of answers.filter((x) => x.status === 429)) {
    expectRateHeaders(a, { limit: 20, name: 'throttle', policy: policyLine, maxReset: 60 })
    expectRefused(a, 'rate_limited', 60)
  }
  return unclaimed.length
}

// Every colliding header value admitted once (1/min), on either gateway; then refused on the other.
async function collidingValues(gws: RunningGateway[], ip: string): Promise<void> {
  const send = (g: RunningGateway, v: string) => fromIp(g, ip, '/tenant', { 'x-tenant': v }).then((r) => r.text().then(() => r.status))
  const first = await Promise.all(COLLIDING.map((v, i) => send(gws[i % gws.length]!, v)))
  expect(first).toEqual(COLLIDING.map(() => 200))
  const second = await Promise.all(COLLIDING.map((v, i) => send(gws[(i + 1) % gws.length]!, v)))
  expect(second).toEqual(COLLIDING.map(() => 429))
}

// `throttle 5/min per ip` + `throttle 3/min per header X-K` (+ a quota): a request refused by
// one limit is counted by none, whichever gateway took it.
async function countedByNone(gws: RunningGateway[], net: string): Promise<void> {
  const [a, b] = [gws[0]!, gws[gws.length - 1]!]
  // A new connection each: no client retry on a reused keep-alive socket can send one twice.
  const send = (g: RunningGateway, ip: string, k: string) => answer(() => fromIp(g, ip, '/two', { 'x-k': k, connection: 'close' }))
  const before = hitsOn('/two')
  const k1 = [await send(a, `${net}.1`, 'k1'), await send(b, `${net}.1`, 'k1'), await send(a, `${net}.1`, 'k1'), await send(b, `${net}.1`, 'k1')]
  expect(k1.map((x) => [x.status, x.headers.get('ratelimit-limit'), x.headers.get('ratelimit-remaining')])).toEqual([
    [200, '3', '2'],
    [200, '3', '1'],
    [200, '3', '0'],
    [429, '3', '0'],
  ])
  for (const x of k1) expect(x.headers.get('ratelimit-policy')).toBe('"throttle";q=5;w=60, "throttle";q=3;w=60, "quota";q=100;w=86400')
  // The address was counted 3 times, not 4.
  const k2 = [await send(b, `${net}.1`, 'k2'), await send(a, `${net}.1`, 'k2'), await send(b, `${net}.1`, 'k2')]
  expect(k2.map((x) => [x.status, x.headers.get('ratelimit-limit'), x.headers.get('ratelimit-remaining')])).toEqual([
    [200, '5', '1'],
    [200, '5', '0'],
    [429, '5', '0'],
  ])
  // k2 was counted 2 times, not 3.
  const k2b = [await send(a, `${net}.2`, 'k2'), await send(b, `${net}.2`, 'k2')]
  expect(k2b.map((x) => [x.status, x.headers.get('ratelimit-limit')])).toEqual([
    [200, '3'],
    [429, '3'],
  ])
  expect(hitsOn('/two') - before).toBe(3 + 2 + 1)
}

// The sum of one series over gateways.
async function metricSum(gws: RunningGateway[], name: string): Promise<number> {
  const texts = await Promise.all(gws.map((g) => g.admin('/metrics').then((r) => r.text())))
  return texts.reduce((n, t) => n + (series(t, name) ?? 0), 0)
}
const decisions = (route: string, app: string, result: string) =>
  `gateway_rate_limit_decisions_total{route="${route}",app="${app}",tier="",result="${result}"}`
const storeFailures = async (gws: RunningGateway[]) => {
  const texts = await Promise.all(gws.map((g) => g.admin('/metrics').then((r) => r.text())))
  return texts.flatMap((t) => t.split('\n').filter((l) => /^gateway_rate_limit_decisions_total\{.*result="store_failure/.test(l)))
}

describe('two instances on one Redis', () => {
  let a: RunningGateway
  let b: RunningGateway
  beforeAll(async () => {
    const args = ['--redis', REDIS, '--redis-prefix', `${PREFIX}two:`]
    ;[a, b] = await Promise.all([gateway(args), gateway(args)])
  })

  // Done when: "… across two instances on one Redis (any split, 20 in total)".
  test('200 concurrent signed requests split across both: exactly 20 admitted in total', async () => {
    const unclaimed = await twoHundredSigned([a, b])
    // Both count their own decisions in /metrics; together 20 and 180.
    const admitted = decisions('GET /signed', 'signer', 'admitted')
    await until(
      () => metricSum([a, b], admitted),
      (n) => n === 20,
      2_000,
      'admitted in /metrics',
    )
    expect(await metricSum([a, b], decisions('GET /signed', 'signer', 'refused'))).toBe(180)
    expect(await storeFailures([a, b])).toEqual([])
  })

  test('header values built to collide: one counter each, shared by both instances', async () => {
    await collidingValues([a, b], '10.20.0.1')
  })

  test('two limits on one route: a request refused by one is counted by none', async () => {
    await countedByNone([a, b], '10.21.0')
  })

  // Redis keeps the time (its TIME), so the instances' own clocks do not matter.
  test('3/s across both instances: never more than 3 in any second, slots return after it', async () => {
    const first = await volley(10, (i) => fromIp(i % 2 ? a : b, '10.22.0.1', '/window'))
    expect(statuses(first)).toEqual({ 200: 3, 429: 7 })
    const all = [...first]
    const t0 = Math.min(...admittedOf(first).map((x) => x.sent))
    while (performance.now() - t0 < 1_300) all.push(...(await volley(2, (i) => fromIp(i % 2 ? a : b, '10.22.0.1', '/window'))))
    const admitted = admittedOf(all)
    expectAtMostPerWindow(admitted, 3, 1_000)
    // The slots came back at about 1 s (all three unless the machine stalls).
    expect(admitted.length).toBeGreaterThanOrEqual(4)
    expect(admitted.length).toBeLessThanOrEqual(6)
  })

  // A 401 ends the request before the decision: its RateLimit fields are the shared counter
  // as it stands (read in the script, counted by no one), on either instance.
  test('a 401 carries the shared counter as it stands, and counts nothing', async () => {
    const ip = '10.23.0.1'
    const remainingOf = async (g: RunningGateway, key?: string) => {
      const r = await answer(() => fromIp(g, ip, '/early', key ? { 'x-api-key': key } : {}))
      return [r.status, r.headers.get('ratelimit-limit'), r.headers.get('ratelimit-remaining')]
    }
    expect(await remainingOf(a)).toEqual([401, '4', '4'])
    expect(await remainingOf(b, KEYS.KEY_A)).toEqual([200, '4', '3'])
    expect(await remainingOf(a)).toEqual([401, '4', '3'])
    const unauthenticated = await volley(6, (i) => fromIp(i % 2 ? a : b, ip, '/early'))
    expect(unauthenticated.map((x) => [x.status, x.headers.get('ratelimit-remaining')])).toEqual(Array(6).fill([401, '3']))
    const keyed = await volley(4, (i) => fromIp(i % 2 ? a : b, ip, '/early', { 'x-api-key': KEYS.KEY_B }))
    expect(statuses(keyed)).toEqual({ 200: 3, 429: 1 })
    expect(await remainingOf(b)).toEqual([401, '4', '0'])
  })

  test('a reload of one instance neither resets nor forks the shared counters', async () => {
    const before = [await answer(() => a.fetch('/reloaded', { headers: { 'x-api-key': KEYS.KEY_A } }))]
    before.push(await answer(() => b.fetch('/reloaded', { headers: { 'x-api-key': KEYS.KEY_A } })))
    expect(before.map((x) => [x.status, x.headers.get('ratelimit-remaining')])).toEqual([
      [200, '3'],
      [200, '2'],
    ])
    writeFileSync(join(dir, 'main.policy'), policy('match GET /added { respond 200 text "added" }\n'))
    const reload = await a.admin('/reload', { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    expect(reload.status).toBe(200)
    expect((await a.fetch('/added')).status).toBe(200)
    expect((await b.fetch('/added')).status).toBe(404)
    const after = await volley(6, (i) => (i % 2 ? a : b).fetch('/reloaded', { headers: { 'x-api-key': KEYS.KEY_A } }))
    expect(statuses(after)).toEqual({ 200: 2, 429: 4 })
    // Another app on the reloaded route still has its own 4.
    expect(statuses(await volley(5, () => a.fetch('/reloaded', { headers: { 'x-api-key': KEYS.KEY_B } })))).toEqual({ 200: 4, 429: 1 })
  })
})

describe('--workers 2 with --redis', () => {
  // Done when: "… with --workers 2". Both worker processes answer; together they admit 20.
  test('200 concurrent requests across both workers: exactly 20 admitted', async () => {
    const port = await freePort()
    const w = await gateway(['--workers', '2', '--port', String(port), '--redis', REDIS, '--redis-prefix', `${PREFIX}workers:`])
    await w.waitFor('stderr', /2 workers/)
    // Request ids start with their worker's prefix: wait until both workers answer.
    const workersSeen = async () => {
      const answers = await volley(20, () => w.fetch('/ping', { headers: { connection: 'close' } }))
      return new Set(answers.map((x) => x.headers.get('x-request-id')!.split('-')[0])).size
    }
    await until(workersSeen, (n) => n >= 2, 5_000, 'both workers answering')
    const answers = await volley(200, () => w.fetch('/keyed', { headers: { 'x-api-key': KEYS.KEY_A, connection: 'close' } }))
    await w.stop()
    expect(statuses(answers)).toEqual({ 200: 20, 429: 180 })
    expect(hitsOn('/keyed')).toBe(20)
    expect(new Set(answers.map((x) => x.headers.get('x-request-id')!.split('-')[0])).size).toBe(2)
    // Each admission decided by the store (a timed-out call would admit without headers).
    const policyLine = '"throttle";q=20;w=60'
    const left = admittedOf(answers).map((x) => expectRateHeaders(x, { limit: 20, name: 'throttle', policy: policyLine, maxReset: 60 }).remaining)
    expect(left.sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i))
  })
})

describe('two instances on a local 3-master Redis Cluster', () => {
  let cluster: RedisCluster
  let a: RunningGateway
  let b: RunningGateway
  beforeAll(async () => {
    cluster = await startRedisCluster(3)
    const args = ['--redis', cluster.url, '--redis-prefix', `${PREFIX}cluster:`]
    ;[a, b] = await Promise.all([gateway(args), gateway(args)])
  }, 20_000)
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()])
    await cluster?.stop()
  })

  // Done when: "… and across two instances on the local Redis Cluster".
  test('200 concurrent signed requests split across both: exactly 20 admitted in total', async () => {
    await twoHundredSigned([a, b])
  })

  // A route's keys share one hash slot (its tag), whatever braces the values hold: a
  // CROSSSLOT error would be a store failure, admitting everything (caught by the counts).
  test('three limits on one route and brace-laden values: exact counts, no store failure', async () => {
    await countedByNone([a, b], '10.30.0')
    await collidingValues([a, b], '10.30.1.1')
    expect(await storeFailures([a, b])).toEqual([])
  })

  // No replicas here, so no failover: a dead master's slots fail at once, and the others once
  // the cluster marks itself down (node timeout 2 s). Nothing hangs meanwhile.
  test('a master dies: every answer within 1 s, each route failing open or closed as declared', async () => {
    await cluster.nodes[0]!.kill()
    const killedAt = performance.now()
    const log: { path: string; a: Answer }[] = []
    const down = (p: string) => (x: Answer) => (p === '/open' ? x.status === 200 && !x.headers.has('ratelimit-limit') : x.status === 503)
    const allDown = () => ['/open', '/closed', '/strict'].every((p) => log.some((x) => x.path === p && down(p)(x.a)))
    while (!allDown() && performance.now() - killedAt < 8_000) {
      const batch = await Promise.all(
        ['/open', '/closed', '/strict'].map((p) => answer(() => fromIp(a, '10.31.0.1', p)).then((x) => ({ path: p, a: x }))),
      )
      log.push(...batch)
    }
    expect(allDown()).toBe(true)
    expect(log.filter((x) => x.a.received - x.a.sent >= 1_000).map((x) => `${x.path} ${(x.a.received - x.a.sent).toFixed(0)} ms`)).toEqual([])
    // Decided by the store (with headers) or by the failure policy; never anything else.
    for (const x of log) expect(x.a.headers.has('ratelimit-limit') ? [200, 429] : x.path === '/open' ? [200] : [503]).toContain(x.a.status)
  })
})

describe('a Redis that fails and comes back', () => {
  let redis: RedisServer
  let g: RunningGateway
  let control: Redis
  const prefix = `${PREFIX}own:`
  beforeAll(async () => {
    redis = await startRedis()
    g = await gateway(['--redis', redis.url, '--redis-prefix', prefix])
    control = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  })
  afterAll(async () => {
    control?.disconnect()
    await g?.stop()
    await redis?.stop()
  })

  // EVALSHA after SCRIPT FLUSH answers NOSCRIPT: the script is loaded again, not a store failure.
  test('SCRIPT FLUSH mid-traffic: decisions stay exact (NOSCRIPT reloads the script)', async () => {
    expect(statuses(await volley(5, () => fromIp(g, '10.40.0.1', '/open')))).toEqual({ 200: 3, 429: 2 })
    expect(await control.script('FLUSH')).toBe('OK')
    const after = await volley(5, () => fromIp(g, '10.40.0.2', '/open'))
    expect(statuses(after)).toEqual({ 200: 3, 429: 2 })
    for (const x of after) expect(x.headers.get('ratelimit-limit')).toBe('3')
    expect(await storeFailures([g])).toEqual([])
  })

  // Keys are the prefix, the route's hash tag, the declared key and window, and a hash of the
  // values: no header value appears in a key, and every key expires.
  test('rate keys are namespaced, hashed and expiring', async () => {
    const secretish = 'tenant-value-visible-in-a-key'
    expect((await fromIp(g, '10.40.1.1', '/two', { 'x-k': secretish })).status).toBe(200)
    expect((await fromIp(g, '10.40.1.1', '/closed')).status).toBe(200)
    const keys = await control.keys('*')
    const rate = keys.filter((k) => k.startsWith(`${prefix}rl:`))
    expect(rate.length).toBeGreaterThanOrEqual(5)
    for (const k of keys) expect(k.startsWith(prefix)).toBe(true)
    for (const k of rate) {
      expect(k).toMatch(/^[^{}]*\{[0-9a-f]{16}\}:(throttle-log|quota):[a-z:+-]+:\w+:[0-9a-f]{32}$/)
      expect(k).not.toContain(secretish)
      // A throttle's sliding log is a list of admission times; a quota's count a string.
      expect(await control.type(k)).toBe(k.includes(':throttle-log:') ? 'list' : 'string')
      expect(await control.pttl(k)).toBeGreaterThan(0)
    }
    // The three keys of /two share one hash tag (one Cluster slot), which no other route has.
    const tag = /\{\w+\}/.exec(rate.find((k) => k.includes(':header:x-k:'))!)![0]
    const kinds = rate.filter((k) => k.includes(tag)).map((k) => k.slice(k.indexOf(tag) + tag.length + 1, k.lastIndexOf(':')))
    expect(kinds.sort()).toEqual(['quota:ip:day', 'throttle-log:header:x-k:60000', 'throttle-log:ip:60000'])
  })

  test('killed mid-traffic: throttles admit, quotas and `on store-failure deny` answer 503, each within 1 s; then it recovers by itself', async () => {
    // Limits are in force: this address has used /open and /strict up.
    expect(statuses(await volley(4, () => fromIp(g, '10.41.0.1', '/open')))).toEqual({ 200: 3, 429: 1 })
    expect(statuses(await volley(4, () => fromIp(g, '10.41.0.1', '/strict')))).toEqual({ 200: 3, 429: 1 })

    // Traffic on the three routes, a few requests at a time, until told to stop.
    const log: { path: string; a: Answer }[] = []
    let running = true
    const traffic = (async () => {
      while (running) {
        const batch = await Promise.all(
          ['/open', '/closed', '/strict'].map((p) => answer(() => fromIp(g, '10.41.0.1', p)).then((a) => ({ path: p, a }))),
        )
        log.push(...batch)
      }
    })()
    await until(
      async () => log.length,
      (n) => n >= 9,
      2_000,
      'traffic before the kill',
    )
    const killedAt = performance.now()
    await redis.kill()
    const failModes = () => ({
      open: log.some((x) => x.path === '/open' && x.a.sent > killedAt && x.a.status === 200),
      closed: log.some((x) => x.path === '/closed' && x.a.sent > killedAt && x.a.status === 503),
      strict: log.some((x) => x.path === '/strict' && x.a.sent > killedAt && x.a.status === 503),
    })
    await until(
      async () => failModes(),
      (m) => m.open && m.closed && m.strict,
      1_000,
      'fail-open and fail-closed',
    )
    // A few more rounds with the store down, then stop.
    const n = log.length
    await until(
      async () => log.length,
      (m) => m >= n + 9,
      2_000,
      'traffic with the store down',
    )
    running = false
    await traffic

    // Nothing hung: every answer, before and after the kill, within 1 s.
    const slow = log.filter((x) => x.a.received - x.a.sent >= 1_000).map((x) => `${x.path} ${(x.a.received - x.a.sent).toFixed(0)} ms`)
    expect(slow).toEqual([])
    // Once an answer showed the store down, every later one on that route did too.
    const firstDown = (p: string, s: number) => Math.min(...log.filter((x) => x.path === p && x.a.status === s).map((x) => x.a.sent))
    const open = log.filter((x) => x.path === '/open' && x.a.sent >= firstDown('/open', 200))
    const closed = log.filter((x) => x.path === '/closed' && x.a.sent >= firstDown('/closed', 503))
    const strict = log.filter((x) => x.path === '/strict' && x.a.sent >= firstDown('/strict', 503))
    // Fail-open: the used-up address is admitted, without RateLimit headers (nothing was decided).
    for (const x of open) {
      expect(x.a.status).toBe(200)
      expect(x.a.headers.get('ratelimit-limit')).toBeNull()
    }
    for (const x of [...closed, ...strict]) {
      expect(x.a.status).toBe(503)
      expect(x.a.code).toBe('store_unavailable')
      expect(JSON.parse(x.a.body).detail).toContain('rate limits')
    }
    // Logged once per route (per interval), not once per request; counted in /metrics.
    for (const [route, verb] of [
      ['GET /open', 'admitted'],
      ['GET /closed', 'refused'],
      ['GET /strict', 'refused'],
    ] as const) {
      const lines = g.stderr.filter((l) => l.includes(`rate limits of ${route}: the store failed`))
      expect(lines).toHaveLength(1)
      expect(lines[0]).toContain(`requests are ${verb} until it answers`)
    }
    // Every request the kill touched (some sent just before it) is counted by its outcome.
    const count = (p: string, pred: (a: Answer) => boolean) => log.filter((x) => x.path === p && pred(x.a)).length
    const metrics = await until(
      () => g.admin('/metrics').then((r) => r.text()),
      (t) => series(t, decisions('GET /strict', '', 'store_failure_denied')) === count('/strict', (a) => a.status === 503),
      2_000,
      'store failures in /metrics',
    )
    expect(series(metrics, decisions('GET /open', '', 'store_failure_allowed'))).toBe(
      count('/open', (a) => a.status === 200 && !a.headers.has('ratelimit-limit')),
    )
    expect(series(metrics, decisions('GET /closed', '', 'store_failure_denied'))).toBe(count('/closed', (a) => a.status === 503))

    // Back on the same port (empty: nothing was persisted): limiting resumes by itself.
    await redis.restart()
    await until(
      () => answer(() => fromIp(g, '10.41.1.1', '/closed')),
      (x) => x.status === 200 && x.headers.get('ratelimit-limit') === '3',
      8_000,
      'limiting after the restart',
    )
    const openAgain = await volley(5, () => fromIp(g, '10.41.2.1', '/open'))
    expect(statuses(openAgain)).toEqual({ 200: 3, 429: 2 })
    const strictAgain = await volley(5, () => fromIp(g, '10.41.2.1', '/strict'))
    expect(statuses(strictAgain)).toEqual({ 200: 3, 429: 2 })
  }, 20_000)

  // SIGSTOP: the connection stays open and nothing answers, the case a timeout must cover.
  test('a Redis that hangs: the same answers within 1 s each; counting resumes when it wakes', async () => {
    // Every counter of this address used up first, so script calls the frozen server runs
    // late (after their timeout) change nothing.
    for (const p of ['/open', '/closed', '/strict']) expect(statuses(await volley(4, () => fromIp(g, '10.42.0.1', p)))).toEqual({ 200: 3, 429: 1 })
    redis.freeze()
    let hung: Answer[]
    try {
      hung = await volley(9, (i) => fromIp(g, '10.42.0.1', ['/open', '/closed', '/strict'][i % 3]!))
    } finally {
      redis.thaw()
    }
    for (const x of hung) expect(x.received - x.sent).toBeLessThan(1_000)
    expect(hung.map((x) => x.status)).toEqual([200, 503, 503, 200, 503, 503, 200, 503, 503])
    await until(
      () => answer(() => fromIp(g, '10.42.0.1', '/open')),
      (x) => x.status === 429 && x.headers.get('ratelimit-remaining') === '0',
      5_000,
      'decisions after the thaw',
    )
    expect(statuses(await volley(4, () => fromIp(g, '10.42.1.1', '/closed')))).toEqual({ 200: 3, 429: 1 })
  })
})
