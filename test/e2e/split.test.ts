// `proxy split`: weighted shares (a fixed number of requests lands within 6σ of its share),
// stickiness by cookie, header and app (the side is a pure function of the key: the same on
// another gateway instance), and a side that is down (its own errors until it leaves the
// rotation, then its share goes to the others; the gateway keeps serving). Real upstreams.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { closedPort, policyDir, removeDir, runCli, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem } from '../helpers/http.ts'
import { BUCKETS, bucketOf } from '../../src/runtime/split.ts'

const KEYS: Record<string, string> = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`KEY_${i}`, `key-${i}-0123456789abcdef`]))
const APPS = Object.keys(KEYS).map((_, i) => `app_${i}`)

let gw: RunningGateway
let dir: string
const ups: Upstream[] = []
const hits: Record<string, number> = {}

// An upstream that counts its hits and answers with its name.
function named(name: string): Upstream {
  const up = startUpstream((req) => {
    const path = new URL(req.url).pathname
    if (path === '/healthz') return new Response('ok')
    hits[name] = (hits[name] ?? 0) + 1
    return new Response(name)
  })
  ups.push(up)
  return up
}

const stable = named('stable')
const canary = named('canary')
const dead = `http://127.0.0.1:${closedPort(0)}`
const alsoDead = `http://127.0.0.1:${closedPort(1)}`

const POLICY = `
upstream stable { target ${stable.url} }
upstream canary { target ${canary.url} }
upstream dead { target ${dead}; passive-health fails 2 cooldown 60s }
upstream probed-dead { target ${alsoDead}; health GET /healthz every 60s fails 1 }
${APPS.map((a, i) => `app ${a} { api-key env KEY_${i} }`).join('\n')}

match GET /weighted { proxy split 80% stable, 20% canary }
match GET /cookie { proxy split 50% stable, 50% canary sticky cookie sid }
match GET /header { proxy split 30% stable, 70% canary sticky header X-User }
match GET /app {
  require key
  proxy split 50% stable, 50% canary sticky app
}
match GET /down { proxy split 50% stable, 50% dead sticky cookie sid }
match GET /probed-down { proxy split 10% stable, 90% probed-dead }
match GET /all-down { proxy split 50% dead, 50% probed-dead }
match GET /other { respond 200 text "still here" }
`

beforeAll(async () => {
  dir = policyDir({ 'main.policy': POLICY })
  gw = await startGateway(dir, [], KEYS)
})

afterAll(async () => {
  await gw?.stop()
  for (const u of ups) u.stop()
  removeDir(dir)
})

// The side a sticky key lands on, from the shares in order: what any instance computes.
const sideOf = (key: string, shares: [string, number][]) => {
  let b = bucketOf(key)
  for (const [name, pct] of shares) {
    if (b < (pct * BUCKETS) / 100) return name
    b -= (pct * BUCKETS) / 100
  }
  throw new Error('shares do not add up')
}

async function sideFor(path: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await gw.fetch(path, { headers })
  expect(res.status).toBe(200)
  return res.text()
}

test('without a sticky key, each request draws by weight (within 6σ over 2,000 requests)', async () => {
  const n = 2000
  const counts: Record<string, number> = {}
  for (let batch = 0; batch < n / 50; batch++) {
    const sides = await Promise.all(Array.from({ length: 50 }, () => sideFor('/weighted')))
    for (const s of sides) counts[s] = (counts[s] ?? 0) + 1
  }
  const sigma = Math.sqrt(n * 0.2 * 0.8) // ≈ 17.9: 400 ± 107
  expect(counts.stable! + counts.canary!).toBe(n)
  expect(Math.abs(counts.canary! - n * 0.2)).toBeLessThan(6 * sigma)
})

describe('sticky', () => {
  test('by cookie: every caller stays on one side, the side the hash of its cookie names', async () => {
    const sides = new Set<string>()
    for (let i = 0; i < 40; i++) {
      const sid = `session-${i}`
      const expected = sideOf(sid, [
        ['stable', 50],
        ['canary', 50],
      ])
      sides.add(expected)
      for (let k = 0; k < 4; k++) expect(await sideFor('/cookie', { Cookie: `theme=dark; sid=${sid}; lang=en` })).toBe(expected)
    }
    expect(sides).toEqual(new Set(['stable', 'canary']))
  })

  test('by header, with uneven shares; a request without the key draws at random', async () => {
    const shares: [string, number][] = [
      ['stable', 30],
      ['canary', 70],
    ]
    for (let i = 0; i < 30; i++) {
      const user = `user-${i}`
      const first = await sideFor('/header', { 'X-User': user })
      expect(first).toBe(sideOf(user, shares))
      expect(await sideFor('/header', { 'X-User': user })).toBe(first)
    }
    // 200 requests without the header: both sides get some (all on one side: p < 1e-30).
    const seen = new Set(await Promise.all(Array.from({ length: 200 }, () => sideFor('/header'))))
    expect(seen).toEqual(new Set(['stable', 'canary']))
  })

  test('by app', async () => {
    const sides = new Set<string>()
    for (let i = 0; i < APPS.length; i++) {
      const expected = sideOf(APPS[i]!, [
        ['stable', 50],
        ['canary', 50],
      ])
      sides.add(expected)
      for (let k = 0; k < 3; k++) expect(await sideFor('/app', { 'X-Api-Key': KEYS[`KEY_${i}`]! })).toBe(expected)
    }
    expect(sides.size).toBe(2)
  })

  test('another gateway instance puts each caller on the same side', async () => {
    const other = await startGateway(dir, [], KEYS)
    try {
      for (let i = 0; i < 20; i++) {
        const cookie = `sid=instance-${i}`
        const a = await (await gw.fetch('/cookie', { headers: { Cookie: cookie } })).text()
        const b = await (await other.fetch('/cookie', { headers: { Cookie: cookie } })).text()
        expect(b).toBe(a)
      }
    } finally {
      await other.stop()
    }
  })
})

describe('a side that is down', () => {
  // Cookies whose bucket names each side of `/down`.
  const keys = Array.from({ length: 64 }, (_, i) => `c${i}`)
  const onDead = keys.find((k) => bucketOf(k) >= BUCKETS / 2)!
  const onStable = keys.find((k) => bucketOf(k) < BUCKETS / 2)!

  test('answers with its own gateway error until passive health takes it out; then its share goes to the other side', async () => {
    // The stable side's callers are served throughout.
    expect(await sideFor('/down', { Cookie: `sid=${onStable}` })).toBe('stable')
    await expectProblem(await gw.fetch('/down', { headers: { Cookie: `sid=${onDead}` } }), 502, 'bad_gateway')
    await expectProblem(await gw.fetch('/down', { headers: { Cookie: `sid=${onDead}` } }), 502, 'bad_gateway')
    // Two failures in a row: out of the rotation for its cooldown; the dead side's callers move.
    for (let i = 0; i < 5; i++) expect(await sideFor('/down', { Cookie: `sid=${onDead}` })).toBe('stable')
    expect(await sideFor('/down', { Cookie: `sid=${onStable}` })).toBe('stable')
    expect(await (await gw.fetch('/other')).text()).toBe('still here')
  })

  test('a side whose health check fails gives its whole share away at once', async () => {
    // The probe runs at start-up; until it has failed the dead side may still be tried.
    await gw.waitFor('stderr', /upstream probed-dead: \S+ failed 1 health checks; out of the rotation/)
    const statuses = await Promise.all(Array.from({ length: 50 }, () => gw.fetch('/probed-down').then(async (r) => [r.status, await r.text()])))
    expect(statuses.every(([s, body]) => s === 200 && body === 'stable')).toBe(true)
  })

  test('every side down: the chosen side is tried and its error answered; other routes keep working', async () => {
    for (let i = 0; i < 6; i++) await expectProblem(await gw.fetch('/all-down'), 502, 'bad_gateway')
    expect(await (await gw.fetch('/other')).text()).toBe('still here')
    expect(await sideFor('/weighted')).toMatch(/^(stable|canary)$/)
  })
})

test('gateway routes --wide shows the split', async () => {
  const { code, stdout } = await runCli(['routes', '--wide', dir], KEYS)
  expect(code).toBe(0)
  expect(stdout).toContain('proxy split 50% stable, 50% canary sticky cookie sid')
  expect(stdout).toContain('proxy split 30% stable, 70% canary sticky header x-user')
})
