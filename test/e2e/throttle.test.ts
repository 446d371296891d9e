// `throttle`, `quota` and `tier` through the real gateway on the memory store: exact counts
// under concurrency (200 signed requests, 20 admitted), keys that never share a counter
// (apps, routes, header and claim values built to collide), tiers and bursts, calendar quotas,
// several limits decided together, the RateLimit headers on every answer, the sliding window
// in time, /metrics, reloads, and `--workers` refused without Redis. The Redis, two-instance
// and Cluster runs are in throttle-redis.test.ts.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { signRequest } from '../../docs/sign-request.ts'
import {
  ADMIN_TOKEN,
  policyDir,
  removeDir,
  runCli,
  startGateway,
  startUpstream,
  type RunningGateway,
  type Upstream,
  closedPort,
} from '../helpers/gateway.ts'
import { raw } from '../helpers/http.ts'
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

const SIGNER_SECRET = 'throttle-e2e-secret-0123456789abcdef'
const KEYS = {
  KEY_A: 'ka-throttle-0123456789',
  KEY_B: 'kb-throttle-0123456789',
  KEY_BRONZE: 'kbronze-throttle-0123456789',
  KEY_SILVER: 'ksilver-throttle-0123456789',
  KEY_GOLD: 'kgold-throttle-0123456789',
  KEY_UNLIMITED: 'kunlimited-throttle-0123456789',
  KEY_TURBO: 'kturbo-throttle-0123456789',
  KEY_PLAIN: 'kplain-throttle-0123456789',
}
const ENV = { SIGNER_SECRET, ...KEYS }
const ISS = 'https://issuer.throttle.test'
const rsa = await generateKeyPair('RS256', { extractable: true })
// Gateways start in well under a second; a loaded machine gets room, a hang still fails.
setDefaultTimeout(15_000)

let upstream: Upstream
let idp: Upstream
let gw: RunningGateway
let dir: string
let deadPort: number
const hits = new Map<string, number>() // upstream requests by path

// Routes of the shared gateway. Each test owns its routes (or its own client addresses, sent
// as X-Forwarded-For from the trusted 127.0.0.1), so no test sees another's counters.
const policy = (extra = '') => `
tier bronze 1/min
tier silver 5/min
tier gold 20/min burst 5
tier unlimited unlimited
tier turbo 8/s burst 2

app signer {
  key "ak_signer"
  secret env SIGNER_SECRET
}
app app_a { api-key env KEY_A }
app app_b { api-key env KEY_B }
app bronze_app {
  api-key env KEY_BRONZE
  tier bronze
}
app silver_app {
  api-key env KEY_SILVER
  tier silver
}
app gold_app {
  api-key env KEY_GOLD
  tier gold
}
app unlimited_app {
  api-key env KEY_UNLIMITED
  tier unlimited
}
app turbo_app {
  api-key env KEY_TURBO
  tier turbo
}
app plain_app { api-key env KEY_PLAIN }

upstream up { target ${upstream.url} }

match GET /signed {
  require hmac
  throttle 20/min per app
  proxy up
}
match GET /sep/one {
  require key
  throttle 2/min per app
  proxy up
}
match GET /sep/two {
  require key
  throttle 2/min per app
  proxy up
}
match GET /sep/app-route/{x} {
  require key
  throttle 2/min per app+route
  proxy up
}
match GET /sep/route {
  require key
  throttle 3/min per route
  proxy up
}
match GET /tenant {
  throttle 1/min per header X-Tenant
  proxy up
}
match GET /claim {
  require jwt issuer "${ISS}" audience "api" jwks ${idp.url}/jwks
  throttle 1/min per jwt.tenant
  proxy up
}
match GET /claims {
  require jwt issuer "${ISS}" audience "api" jwks ${idp.url}/jwks
  throttle 1/min per jwt.tenant+jwt.team
  proxy up
}
match GET /tiered {
  require key
  throttle tier per app
  proxy up
}
match GET /turbo {
  require key
  throttle tier per app
  proxy up
}
match GET /capped {
  require key
  throttle tier per app
  throttle 10/min per app
  proxy up
}
match GET /metered {
  require key
  throttle tier per app
  proxy up
}
match GET /quota {
  require key
  quota 3/day per app
  on store-failure deny
  proxy up
}
match GET /two {
  throttle 5/min per ip
  throttle 3/min per header X-K
  proxy up
}
match GET /early {
  require key
  throttle 4/min per ip
  proxy up
}
match GET /boom {
  throttle 10/min per ip
  proxy up
}
match GET /down {
  throttle 10/min per ip
  proxy http://127.0.0.1:${deadPort}
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
${extra}`

beforeAll(async () => {
  upstream = startUpstream((req) => {
    const path = new URL(req.url).pathname
    hits.set(path, (hits.get(path) ?? 0) + 1)
    if (path === '/boom') return new Response('upstream broke', { status: 500 })
    return new Response('ok')
  })
  const jwk = { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' }
  idp = startUpstream(() => Response.json({ keys: [jwk] }))
  deadPort = closedPort()
  dir = policyDir({ 'main.policy': policy() })
  gw = await startGateway(dir, ['--trust-proxy', '127.0.0.1/32', '--no-watch'], ENV)
})

afterAll(async () => {
  await gw?.stop()
  upstream?.stop()
  idp?.stop()
  removeDir(dir)
})

const withKey = (key: string, path: string, headers: Record<string, string> = {}) => gw.fetch(path, { headers: { 'x-api-key': key, ...headers } })
const fromIp = (ip: string, path: string, headers: Record<string, string> = {}) => gw.fetch(path, { headers: { 'x-forwarded-for': ip, ...headers } })
const admittedOf = (answers: readonly Answer[]) => answers.filter((a) => a.status === 200)

describe('exact under concurrency', () => {
  // Done when: "throttle 20/min per app: 200 concurrent signed requests from one app admit exactly 20".
  test('200 concurrent signed requests from one app: exactly 20 admitted, 180 refused with Retry-After and RateLimit headers', async () => {
    const url = `${gw.url}/signed`
    const signed = await Promise.all(Array.from({ length: 200 }, () => signRequest('GET', url, { keyid: 'ak_signer', secret: SIGNER_SECRET })))
    const answers = await volley(200, (i) => fetch(url, { headers: signed[i] }))
    expect(statuses(answers)).toEqual({ 200: 20, 429: 180 })
    expect(hits.get('/signed')).toBe(20)
    const policyLine = '"throttle";q=20;w=60'
    // Admitted: Remaining counts down 19…0, one value each.
    const remaining = admittedOf(answers).map(
      (a) => expectRateHeaders(a, { limit: 20, name: 'throttle', policy: policyLine, maxReset: 60 }).remaining,
    )
    expect(remaining.sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i))
    for (const a of answers.filter((x) => x.status === 429)) {
      expect(expectRateHeaders(a, { limit: 20, name: 'throttle', policy: policyLine, maxReset: 60 }).remaining).toBe(0)
      expectRefused(a, 'rate_limited', 60)
      expect(JSON.parse(a.body).detail).toContain('20')
    }
  })
})

describe('counters are never shared', () => {
  // Different apps and different routes with the same declared limit each count alone.
  test('apps and routes: 2 per app on each of two routes with the same line', async () => {
    const a1 = await volley(5, () => withKey(KEYS.KEY_A, '/sep/one'))
    const b1 = await volley(5, () => withKey(KEYS.KEY_B, '/sep/one'))
    const a2 = await volley(5, () => withKey(KEYS.KEY_A, '/sep/two'))
    const b2 = await volley(5, () => withKey(KEYS.KEY_B, '/sep/two'))
    for (const v of [a1, b1, a2, b2]) expect(statuses(v)).toEqual({ 200: 2, 429: 3 })
    expect(hits.get('/sep/one')).toBe(4)
    expect(hits.get('/sep/two')).toBe(4)
  })

  test('app+route: one counter per app for the whole route, whatever the path', async () => {
    const a = await volley(3, (i) => withKey(KEYS.KEY_A, `/sep/app-route/${i}`))
    expect(statuses(a)).toEqual({ 200: 2, 429: 1 })
    expect(statuses(await volley(2, (i) => withKey(KEYS.KEY_B, `/sep/app-route/b${i}`)))).toEqual({ 200: 2 })
    expect(statuses(await volley(2, (i) => withKey(KEYS.KEY_A, `/sep/app-route/z${i}`)))).toEqual({ 429: 2 })
  })

  test('per route: every caller shares the route counter', async () => {
    const mixed = await volley(6, (i) => withKey(i % 2 ? KEYS.KEY_A : KEYS.KEY_B, '/sep/route'))
    expect(statuses(mixed)).toEqual({ 200: 3, 429: 3 })
  })

  // Bad input: separators, hash-tag braces, case, 10 KB values, control bytes. Each distinct
  // value is admitted once (1/min); a second pass refuses every one. A collision shows up as
  // a 429 in the first pass, a truncation as two long values sharing one.
  test('header values built to collide each get their own counter; NUL and control bytes do not crash', async () => {
    const values = COLLIDING
    const send = (v: string) => fromIp('10.9.0.1', '/tenant', { 'x-tenant': v })
    const first = await Promise.all(values.map((v) => send(v).then((r) => r.text().then(() => r.status))))
    expect(first).toEqual(values.map(() => 200))
    // Absent is one more value (it is the empty value).
    expect((await fromIp('10.9.0.1', '/tenant')).status).toBe(200)
    const second = await Promise.all(values.map((v) => send(v).then((r) => r.text().then(() => r.status))))
    expect(second).toEqual(values.map(() => 429))
    expect((await fromIp('10.9.0.1', '/tenant')).status).toBe(429)

    // The header name is case-insensitive: one counter whatever case the name is sent in.
    const lower = await raw(gw.url, 'GET', '/tenant', ['x-tenant: same-name'])
    const upper = await raw(gw.url, 'GET', '/tenant', ['X-TENANT: same-name'])
    expect([lower.status, upper.status]).toEqual([200, 429])

    // Control bytes on the wire: refused by the HTTP parser or counted on their own; either
    // way the gateway goes on answering, and such a value shares no counter with its neighbours.
    for (const bad of ['a\x00b', 'a\x01b', 'a\x7fb', 'a\tb']) {
      const r = await raw(gw.url, 'GET', '/tenant', [`X-Tenant: ${bad}`])
      expect([200, 400]).toContain(r.status)
      const again = await raw(gw.url, 'GET', '/tenant', [`X-Tenant: ${bad}`])
      expect(again.status).toBe(r.status === 200 ? 429 : 400)
    }
    expect((await fromIp('10.9.0.2', '/tenant', { 'x-tenant': 'after-control-bytes' })).status).toBe(200)
    expect(hits.get('/tenant')).toBeGreaterThanOrEqual(values.length + 2)
  })

  test('jwt.CLAIM: each claim value its own counter (case, braces, separators, types, absent)', async () => {
    const now = Math.floor(Date.now() / 1000)
    const token = (tenant: unknown) =>
      new SignJWT({ iss: ISS, aud: 'api', sub: 'user-1', iat: now, exp: now + 300, tenant })
        .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' })
        .sign(rsa.privateKey)
    // The number 7 and the string "7", and a missing claim, are three counters.
    const claims: unknown[] = ['acme', 'ACME', '{acme}', 'a:b', 'x'.repeat(10 * 1024), 7, '7', ['acme'], { t: 'acme' }, undefined]
    const tokens = await Promise.all(claims.map(token))
    const send = (t: string) => gw.fetch('/claim', { headers: { authorization: `Bearer ${t}` } }).then((r) => r.text().then(() => r.status))
    expect(await Promise.all(tokens.map(send))).toEqual(claims.map(() => 200))
    expect(await Promise.all(tokens.map(send))).toEqual(claims.map(() => 429))
  })

  // Parts of a key are joined with NULs; a claim may hold NULs of its own. These pairs would
  // read the same if the parts were simply joined: each is its own counter.
  test('jwt.A+jwt.B: claims holding NULs cannot pass for another pair of values', async () => {
    const now = Math.floor(Date.now() / 1000)
    const token = (tenant: string, team: string) =>
      new SignJWT({ iss: ISS, aud: 'api', sub: 'user-1', iat: now, exp: now + 300, tenant, team })
        .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' })
        .sign(rsa.privateKey)
    const pairs: [string, string][] = [
      ['x\u0000s:y', 'z'],
      ['x', 'y\u0000s:z'],
      ['x\u0000s:y\u0000s:z', ''],
      ['~"s:x"', 'y'],
    ]
    const tokens = await Promise.all(pairs.map(([a, b]) => token(a, b)))
    const send = (t: string) => gw.fetch('/claims', { headers: { authorization: `Bearer ${t}` } }).then((r) => r.text().then(() => r.status))
    expect(await Promise.all(tokens.map(send))).toEqual(pairs.map(() => 200))
    expect(await Promise.all(tokens.map(send))).toEqual(pairs.map(() => 429))
  })
})

describe('tiers', () => {
  const goldPolicy = '"gold";q=20;w=60, "gold-burst";q=5;w=15'

  test('throttle tier per app: bronze 1, silver 5, gold 5 at once (its burst), unlimited and no tier all', async () => {
    const [bronze, silver, gold, unlimited, plain] = await Promise.all(
      [KEYS.KEY_BRONZE, KEYS.KEY_SILVER, KEYS.KEY_GOLD, KEYS.KEY_UNLIMITED, KEYS.KEY_PLAIN].map((k) => volley(30, () => withKey(k, '/tiered'))),
    )
    expect(statuses(bronze!)).toEqual({ 200: 1, 429: 29 })
    expect(statuses(silver!)).toEqual({ 200: 5, 429: 25 })
    expect(statuses(gold!)).toEqual({ 200: 5, 429: 25 })
    expect(statuses(unlimited!)).toEqual({ 200: 30 })
    expect(statuses(plain!)).toEqual({ 200: 30 })
    expect(hits.get('/tiered')).toBe(1 + 5 + 5 + 30 + 30)

    // The tier names the policy; bronze and silver have one window each.
    for (const a of bronze!) expectRateHeaders(a, { limit: 1, name: 'bronze', policy: '"bronze";q=1;w=60', maxReset: 60 })
    for (const a of silver!) expectRateHeaders(a, { limit: 5, name: 'silver', policy: '"silver";q=5;w=60', maxReset: 60 })
    // Gold: the burst window (5 in any 15 s) is the tightest, and refuses until it frees.
    const goldLeft = admittedOf(gold!).map((a) => expectRateHeaders(a, { limit: 5, name: 'gold-burst', policy: goldPolicy, maxReset: 15 }).remaining)
    expect(goldLeft.sort()).toEqual([0, 1, 2, 3, 4])
    for (const a of gold!.filter((x) => x.status === 429)) {
      expectRateHeaders(a, { limit: 5, name: 'gold-burst', policy: goldPolicy, maxReset: 15 })
      expect(expectRefused(a, 'rate_limited', 15)).toBeGreaterThanOrEqual(14)
    }
    for (const a of bronze!.filter((x) => x.status === 429)) expect(expectRefused(a, 'rate_limited', 60)).toBeGreaterThanOrEqual(59)
    // Still refused a moment later: the burst window has not moved.
    expect(statuses(await volley(3, () => withKey(KEYS.KEY_GOLD, '/tiered')))).toEqual({ 429: 3 })
  })

  // The tier's line and the cap's have one key and window (per app, 60 s): one counter, each
  // holding its own limit, every request counted once (not twice, which would admit 3).
  test('a tier and a cap on one key and window share one counter: silver admits its 5', async () => {
    const silver = await volley(12, () => withKey(KEYS.KEY_SILVER, '/capped'))
    expect(statuses(silver)).toEqual({ 200: 5, 429: 7 })
    for (const a of silver) expectRateHeaders(a, { limit: 5, name: 'silver', policy: '"silver";q=5;w=60, "throttle";q=10;w=60', maxReset: 60 })
    expect(
      admittedOf(silver)
        .map((a) => a.headers.get('ratelimit-remaining'))
        .sort(),
    ).toEqual(['0', '1', '2', '3', '4'])
  })

  // `tier turbo 8/s burst 2`: the gold shape scaled down to fit a test: at most 2 in any
  // 250 ms and 8 in any second, and slots come back as the windows move.
  test('a burst window frees by itself; never more than the burst in its window or the rate in the unit', async () => {
    const first = await volley(10, () => withKey(KEYS.KEY_TURBO, '/turbo'))
    expect(statuses(first)).toEqual({ 200: 2, 429: 8 })
    const all = [...first]
    const t0 = Math.min(...admittedOf(first).map((a) => a.sent))
    while (performance.now() - t0 < 1_400) all.push(...(await volley(3, () => withKey(KEYS.KEY_TURBO, '/turbo'))))
    const admitted = admittedOf(all)
    expectAtMostPerWindow(admitted, 2, 250)
    expectAtMostPerWindow(admitted, 8, 1_000)
    // Bursts came back (at 250, 500, 750 ms, then the second's slots from 1000 ms on): 8 or
    // more in all unless the machine stalls.
    expect(admitted.length).toBeGreaterThanOrEqual(6)
    expect(admitted.length).toBeLessThanOrEqual(12)
    expect(all.every((a) => a.status === 200 || a.status === 429)).toBe(true)
  })
})

describe('quota', () => {
  test('quota 3/day per app: 3 admitted, then 429 quota_exceeded until the next UTC midnight', async () => {
    const answers = await volley(6, () => withKey(KEYS.KEY_A, '/quota'))
    expect(statuses(answers)).toEqual({ 200: 3, 429: 3 })
    expect(hits.get('/quota')).toBe(3)
    const now = new Date()
    const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1)
    const toMidnight = (midnight - now.getTime()) / 1000
    for (const a of answers) {
      const { reset } = expectRateHeaders(a, { limit: 3, name: 'quota', policy: '"quota";q=3;w=86400', maxReset: 86_400 })
      expect(Math.abs(reset - toMidnight)).toBeLessThanOrEqual(2)
    }
    for (const a of answers.filter((x) => x.status === 429)) {
      expect(Math.abs(expectRefused(a, 'quota_exceeded', 86_400) - toMidnight)).toBeLessThanOrEqual(2)
      expect(JSON.parse(a.body).detail).toContain('quota')
    }
    // Another app has its own quota.
    expect(statuses(await volley(4, () => withKey(KEYS.KEY_B, '/quota')))).toEqual({ 200: 3, 429: 1 })
  })
})

describe('several limits on one route', () => {
  // `throttle 5/min per ip` and `throttle 3/min per header X-K`, decided together: a request
  // refused by one is counted by neither.
  test('a request refused by one limit is counted by none', async () => {
    // A new connection each: no client retry on a reused keep-alive socket can send one twice.
    const send = (ip: string, k: string) => answer(() => fromIp(ip, '/two', { 'x-k': k, connection: 'close' }))
    const policyLine = '"throttle";q=5;w=60, "throttle";q=3;w=60'
    // ip1/k1: 3 admitted (k1 full, ip1 at 3), the 4th refused by the header limit.
    const k1 = [await send('10.2.0.1', 'k1'), await send('10.2.0.1', 'k1'), await send('10.2.0.1', 'k1'), await send('10.2.0.1', 'k1')]
    expect(k1.map((a) => a.status)).toEqual([200, 200, 200, 429])
    expect(k1.map((a) => [a.headers.get('ratelimit-limit'), a.headers.get('ratelimit-remaining')])).toEqual([
      ['3', '2'],
      ['3', '1'],
      ['3', '0'],
      ['3', '0'],
    ])
    for (const a of k1) expect(a.headers.get('ratelimit-policy')).toBe(policyLine)
    // ip1 was counted 3 times, not 4: two more pass on another header value, then the ip refuses.
    const k2 = [await send('10.2.0.1', 'k2'), await send('10.2.0.1', 'k2'), await send('10.2.0.1', 'k2')]
    expect(k2.map((a) => a.status)).toEqual([200, 200, 429])
    expect(k2.map((a) => [a.headers.get('ratelimit-limit'), a.headers.get('ratelimit-remaining')])).toEqual([
      ['5', '1'],
      ['5', '0'],
      ['5', '0'],
    ])
    // k2 was counted 2 times, not 3: from another address it has exactly one left.
    const k2b = [await send('10.2.0.2', 'k2'), await send('10.2.0.2', 'k2')]
    expect(k2b.map((a) => a.status)).toEqual([200, 429])
    expect(k2b[1]!.headers.get('ratelimit-limit')).toBe('3')
    // And 10.2.0.2 was counted once: 4 left, whatever the header.
    const rest = await volley(6, (i) => fromIp('10.2.0.2', '/two', { 'x-k': `fresh-${i}` }))
    expect(statuses(rest)).toEqual({ 200: 4, 429: 2 })
    expect(hits.get('/two')).toBe(3 + 2 + 1 + 4)
  })
})

describe('RateLimit headers on every answer', () => {
  test('an upstream 500 and a gateway 502 carry them too', async () => {
    const policyLine = '"throttle";q=10;w=60'
    const boom = await answer(() => fromIp('10.3.0.1', '/boom'))
    expect(boom.status).toBe(500)
    expect(boom.body).toBe('upstream broke')
    expect(expectRateHeaders(boom, { limit: 10, name: 'throttle', policy: policyLine, maxReset: 60 }).remaining).toBe(9)
    const down = await answer(() => fromIp('10.3.0.1', '/down'))
    expect(down.status).toBeGreaterThanOrEqual(502)
    expect(down.code).not.toBeNull()
    expect(expectRateHeaders(down, { limit: 10, name: 'throttle', policy: policyLine, maxReset: 60 }).remaining).toBe(9)
  })
})

describe('RateLimit headers before the decision', () => {
  // A 401 from the `require` line ends the request before the throttles' decision: its
  // fields are the counter's as it stands, read without counting.
  test('a 401 carries them too, and counts nothing: what is left stays for the admitted', async () => {
    const ip = '10.9.0.1'
    const o = { limit: 4, name: 'throttle', policy: '"throttle";q=4;w=60', maxReset: 60 }
    const first = await answer(() => fromIp(ip, '/early'))
    expect(first.status).toBe(401)
    expect(first.code).toBe('unauthenticated')
    expect(expectRateHeaders(first, o).remaining).toBe(4)
    for (const left of [3, 2]) {
      const ok = await answer(() => fromIp(ip, '/early', { 'x-api-key': KEYS.KEY_A }))
      expect(ok.status).toBe(200)
      expect(expectRateHeaders(ok, o).remaining).toBe(left)
    }
    const again = await volley(5, () => fromIp(ip, '/early'))
    for (const a of again) {
      expect(a.status).toBe(401)
      expect(expectRateHeaders(a, o).remaining).toBe(2)
    }
    const admitted = await volley(3, () => fromIp(ip, '/early', { 'x-api-key': KEYS.KEY_A }))
    expect(statuses(admitted)).toEqual({ 200: 2, 429: 1 })
    const full = await answer(() => fromIp(ip, '/early'))
    expect(full.status).toBe(401)
    expect(expectRateHeaders(full, o).remaining).toBe(0)
  })

  test('per app, an unidentified caller sees the counter of its address (where it would be counted)', async () => {
    const a = await answer(() => fromIp('10.9.0.2', '/sep/one'))
    expect(a.status).toBe(401)
    expect(expectRateHeaders(a, { limit: 2, name: 'throttle', policy: '"throttle";q=2;w=60', maxReset: 60 }).remaining).toBe(2)
  })
})

describe('the sliding window in time', () => {
  // `throttle 3/s per ip`: slots return one second after they were used, never sooner, and
  // no second ever holds more than 3 (a fixed window would admit 6 across its boundary).
  test('3/s: slots return after 1 s; never more than 3 in any 1 s', async () => {
    const ip = '10.4.0.1'
    const first = await volley(10, () => fromIp(ip, '/window'))
    expect(statuses(first)).toEqual({ 200: 3, 429: 7 })
    for (const a of first.filter((x) => x.status === 429)) expect(expectRefused(a, 'rate_limited', 1)).toBe(1)
    const all = [...first]
    const t0 = Math.min(...admittedOf(first).map((a) => a.sent))
    while (performance.now() - t0 < 2_300) all.push(...(await volley(2, () => fromIp(ip, '/window'))))
    const admitted = admittedOf(all)
    expectAtMostPerWindow(admitted, 3, 1_000)
    // The slots came back at about 1 s and again at 2 s (9 in all unless the machine stalls),
    // and none before 1 s.
    expect(admitted.length).toBeGreaterThanOrEqual(6)
    expect(admitted.length).toBeLessThanOrEqual(9)
    const again = admitted.filter((a) => !first.includes(a)).map((a) => a.received - t0)
    expect(Math.min(...again)).toBeGreaterThanOrEqual(1_000)
    expect(Math.min(...again)).toBeLessThan(2_000)
  })
})

describe('/metrics', () => {
  test('gateway_rate_limit_decisions_total by route, app, tier and result', async () => {
    const answers = await volley(8, () => withKey(KEYS.KEY_SILVER, '/metered'))
    expect(statuses(answers)).toEqual({ 200: 5, 429: 3 })
    const labels = (result: string) => `gateway_rate_limit_decisions_total{route="GET /metered",app="silver_app",tier="silver",result="${result}"}`
    const text = await until(
      () => gw.admin('/metrics').then((r) => r.text()),
      (t) => series(t, labels('refused')) === 3,
      2_000,
      'the refused series',
    )
    expect(text).toContain('# TYPE gateway_rate_limit_decisions_total counter')
    expect(series(text, labels('admitted'))).toBe(5)
    expect(series(text, labels('refused'))).toBe(3)
  })
})

describe('reload', () => {
  // Counter keys come from the declared key, not the program version: a reload continues them.
  test('POST /reload neither resets nor forks the counters', async () => {
    const before = [await answer(() => withKey(KEYS.KEY_A, '/reloaded')), await answer(() => withKey(KEYS.KEY_A, '/reloaded'))]
    expect(before.map((a) => [a.status, a.headers.get('ratelimit-remaining')])).toEqual([
      [200, '3'],
      [200, '2'],
    ])
    writeFileSync(join(dir, 'main.policy'), policy('match GET /added { respond 200 text "added" }\n'))
    const reload = await gw.admin('/reload', { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    expect(reload.status).toBe(200)
    expect((await gw.fetch('/added')).status).toBe(200)
    const after = await volley(4, () => withKey(KEYS.KEY_A, '/reloaded'))
    expect(statuses(after)).toEqual({ 200: 2, 429: 2 })
    expect(hits.get('/reloaded')).toBe(4)
  })
})

// `defaults` lines come before the route's own `require`: the limits are decided after the
// whole access stage, so a `per app` limit in defaults still counts each app on its own.
describe('a per-app limit in defaults', () => {
  test('two apps from one address each get their own 2 per minute', async () => {
    const d = policyDir({
      'p.policy': `app app_a { api-key env KEY_A }\napp app_b { api-key env KEY_B }\ndefaults {\n  throttle 2/min per app\n}\nmatch GET /d {\n  require key\n  respond 200\n}\n`,
    })
    const g = await startGateway(d, ['--no-watch'], KEYS)
    try {
      const a = await volley(3, () => g.fetch('/d', { headers: { 'x-api-key': KEYS.KEY_A } }))
      const b = await volley(3, () => g.fetch('/d', { headers: { 'x-api-key': KEYS.KEY_B } }))
      expect([statuses(a), statuses(b)]).toEqual([
        { 200: 2, 429: 1 },
        { 200: 2, 429: 1 },
      ])
    } finally {
      await g.stop()
      removeDir(d)
    }
  })
})

describe('--workers without a shared store', () => {
  // Each worker would count alone, admitting up to N times the limit: refused at start-up.
  test('start-up refuses a throttled or quota program with one needs-redis line each, exit 1', async () => {
    const d = policyDir({
      'p.policy': 'match GET /x {\n  throttle 20/min per ip\n  respond 200\n}\nmatch GET /y {\n  quota 5/day per ip\n  respond 200\n}\n',
    })
    try {
      const { code, stderr } = await runCli(['--policies', d, '--workers', '2', '--port', '1', '--admin-port', '0', '--no-watch'])
      expect(code).toBe(1)
      expect(stderr).toContain("'throttle' needs --redis when the gateway runs --workers")
      expect(stderr).toContain("'quota' needs --redis when the gateway runs --workers")
      expect(stderr).toContain('p.policy:2:3: error')
      expect(stderr).toContain('p.policy:6:3: error')
    } finally {
      removeDir(d)
    }
  })
})
