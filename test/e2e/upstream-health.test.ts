// Retries inside one deadline, the retry body cap, passive health (kept across reloads, with
// its cooldown), active probes at start-up and panic mode, against real upstreams.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { ADMIN_TOKEN, policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem } from '../helpers/http.ts'

const ups: Upstream[] = []
let gw: RunningGateway
let dir: string

// What each upstream saw: `name path` → count, and the request bodies by `name path`.
const hits: Record<string, number> = {}
const bodies: Record<string, { length: number; hash: string }[]> = {}
const count = (name: string, path: string) => hits[`${name} ${path}`] ?? 0
const hitsOn = (name: string, prefix: string) =>
  Object.entries(hits)
    .filter(([k]) => k.startsWith(`${name} ${prefix}`))
    .reduce((n, [, v]) => n + v, 0)

const hash = (b: Uint8Array) => new Bun.CryptoHasher('sha256').update(b).digest('hex')

// An upstream named `name`: /healthz answers `healthz`, anything else is counted (body kept)
// and answered by `status` with the name as body.
function named(name: string, status: number, healthz = 200): Upstream {
  const up = startUpstream(async (req) => {
    const path = new URL(req.url).pathname
    if (path === '/healthz') return new Response(healthz < 400 ? 'ok' : 'down', { status: healthz })
    const key = `${name} ${path}`
    hits[key] = (hits[key] ?? 0) + 1
    const body = new Uint8Array(await req.arrayBuffer())
    ;(bodies[key] ??= []).push({ length: body.byteLength, hash: hash(body) })
    return new Response(name, { status })
  })
  ups.push(up)
  return up
}

// Never answers (the gateway gives up first); counts the tries.
const never = startUpstream(async (req) => {
  const path = new URL(req.url).pathname
  hits[`never ${path}`] = (hits[`never ${path}`] ?? 0) + 1
  await new Promise<void>((resolve) => req.signal.addEventListener('abort', () => resolve()))
  return new Response('too late')
})
ups.push(never)

const busy = named('busy', 503)
const fine = named('fine', 200)
const bad = named('bad', 502)
const good = named('good', 200)
const sick = named('sick', 200, 503)
const well = named('well', 200)
const down1 = named('down1', 200, 503)
const down2 = named('down2', 200, 503)

const PROBED_OUT = new RegExp(`upstream probed: http://127\\.0\\.0\\.1:${sick.port} failed 1 health checks; out of the rotation`)
let probedOutAfterMs: Promise<number>

beforeAll(async () => {
  dir = policyDir({
    'main.policy': `
upstream within { target ${never.url}; timeout 200ms; retry 5 on timeout within 700ms }
upstream cap-small { target ${busy.url}; target ${fine.url}; retry 1 on 503 retry-unsafe }
upstream cap-big { target ${busy.url}; target ${fine.url}; retry 1 on 503 retry-unsafe }
upstream passive { target ${bad.url}; target ${good.url}; passive-health fails 2 cooldown 30s }
upstream passive-short { target ${bad.url}; target ${good.url}; passive-health fails 2 cooldown 300ms }
upstream probed { target ${sick.url}; target ${well.url}; health GET /healthz every 60s fails 1 }
upstream panic { target ${down1.url}; target ${down2.url}; health GET /healthz every 60s fails 1 }
match * /within/{p} { proxy within }
match * /cap-small/{p} { proxy cap-small }
match * /cap-big/{p} { proxy cap-big }
match * /passive/{p} { proxy passive }
match * /passive-short/{p} { proxy passive-short }
match * /probed/{p} { proxy probed }
match * /panic/{p} { proxy panic }
`,
  })
  gw = await startGateway(dir)
  // Timed from the moment the gateway listens (its programs, and so its probes, start before).
  const ready = performance.now()
  probedOutAfterMs = gw.waitFor('stderr', PROBED_OUT, 10_000).then(() => performance.now() - ready)
})

afterAll(async () => {
  await gw?.stop()
  for (const u of ups) u.stop()
  removeDir(dir)
})

test('retries with back-off stay inside `within`: 504 in time, at most 4 tries of 200 ms in 700 ms', async () => {
  const started = performance.now()
  const res = await gw.fetch('/within/x')
  const ms = performance.now() - started
  await expectProblem(res, 504, 'upstream_timeout')
  expect(ms).toBeGreaterThanOrEqual(550) // retried: one try alone ends at 200 ms
  expect(ms).toBeLessThan(1_200) // not 6 tries of 200 ms
  const tries = count('never', '/within/x')
  expect(tries).toBeGreaterThanOrEqual(3)
  expect(tries).toBeLessThanOrEqual(4)
})

describe('the retry body cap (1 MiB without `limit body`)', () => {
  const bytes = (n: number) => {
    const b = new Uint8Array(n)
    for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 10)) % 251
    return b
  }

  test('a 100 KB POST is kept and sent again whole to the second target', async () => {
    const body = bytes(100 * 1024)
    const res = await gw.fetch('/cap-small/upload', { method: 'POST', body })
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('fine')
    const whole = { length: body.byteLength, hash: hash(body) }
    expect(bodies['busy /cap-small/upload']).toEqual([whole])
    expect(bodies['fine /cap-small/upload']).toEqual([whole])
  })

  test('a 2 MB POST is streamed once: the 503 stands and the second target is never called', async () => {
    const body = bytes(2 * 1024 * 1024)
    const res = await gw.fetch('/cap-big/upload', { method: 'POST', body })
    expect(res.status).toBe(503)
    expect(res.headers.get('gateway-error')).toBeNull() // the upstream's answer, not the gateway's
    expect(await res.text()).toBe('busy')
    expect(bodies['busy /cap-big/upload']).toEqual([{ length: body.byteLength, hash: hash(body) }])
    expect(count('fine', '/cap-big/upload')).toBe(0)
  })
})

describe('passive health', () => {
  const OUT_30S = new RegExp(`upstream passive: http://127\\.0\\.0\\.1:${bad.port} failed 2 tries in a row; out of the rotation for 30s`)
  const OUT_SHORT = new RegExp(`upstream passive-short: http://127\\.0\\.0\\.1:${bad.port} failed 2 tries in a row; out of the rotation for 0\\.3s`)

  // Requests until `line` appears on stderr (bounded); the bad target answers 502 meanwhile.
  // Returns when the last 502 came back: the try that took the target out.
  async function untilEjected(prefix: string, line: RegExp): Promise<number> {
    let last = 0
    for (let i = 0; i < 10 && !gw.stderr.some((l) => line.test(l)); i++) {
      const res = await gw.fetch(`${prefix}/warm-${i}`)
      expect([200, 502]).toContain(res.status)
      if (res.status === 502) last = performance.now()
      await res.text()
    }
    await gw.waitFor('stderr', line, 1_000)
    return last
  }

  async function allGood(prefix: string, n: number, tag = 'after'): Promise<void> {
    for (let i = 0; i < n; i++) {
      const res = await gw.fetch(`${prefix}/${tag}-${i}`)
      expect(res.status).toBe(200)
      expect(await res.text()).toBe('good')
    }
  }

  test('after 2 failed tries the bad target is out: every request goes to the good one, also after a reload', async () => {
    await untilEjected('/passive', OUT_30S)
    expect(hitsOn('bad', '/passive/')).toBe(2)
    await allGood('/passive', 6)
    expect(hitsOn('bad', '/passive/')).toBe(2)

    const reload = await gw.admin('/reload', { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    expect(reload.status).toBe(200)
    await reload.text()
    await allGood('/passive', 6, 'reloaded')
    expect(hitsOn('bad', '/passive/')).toBe(2)
  })

  test('with `cooldown 300ms` the bad target is tried again once the cooldown has passed', async () => {
    const ejected = await untilEjected('/passive-short', OUT_SHORT)
    const before = hitsOn('bad', '/passive-short/')
    // Right after the ejection the good target takes the requests.
    await allGood('/passive-short', 2)
    expect(hitsOn('bad', '/passive-short/')).toBe(before)
    let back = 0
    for (let i = 0; i < 200 && hitsOn('bad', '/passive-short/') === before; i++) {
      const res = await gw.fetch(`/passive-short/poll-${i}`)
      await res.text()
      if (res.status === 502) back = performance.now() - ejected
      else await Bun.sleep(20)
    }
    expect(hitsOn('bad', '/passive-short/')).toBe(before + 1)
    expect(back).toBeGreaterThanOrEqual(200) // 300 ms, less the delay of the answer that saw the ejection
    expect(back).toBeLessThan(2_000)
  })
})

test('an active probe runs at start-up: the failing target is out within a second or so, not after 60 s', async () => {
  expect(await probedOutAfterMs).toBeLessThan(1_500) // headroom for a busy machine; the interval is 60 s
  for (let i = 0; i < 6; i++) {
    const res = await gw.fetch(`/probed/r-${i}`)
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('well')
  }
  expect(hitsOn('sick', '/probed/')).toBe(0)
})

test('panic mode: with every target failing its checks the gateway still proxies to them, and says so', async () => {
  await gw.waitFor('stderr', new RegExp(`upstream panic: http://127\\.0\\.0\\.1:${down1.port} failed 1 health checks`))
  await gw.waitFor('stderr', new RegExp(`upstream panic: http://127\\.0\\.0\\.1:${down2.port} failed 1 health checks`))
  const seen = new Set<string>()
  for (let i = 0; i < 4; i++) {
    const res = await gw.fetch(`/panic/r-${i}`)
    expect(res.status).toBe(200)
    expect(res.headers.get('gateway-error')).toBeNull()
    seen.add(await res.text())
  }
  expect([...seen].sort()).toEqual(['down1', 'down2'])
  await gw.waitFor('stderr', /upstream panic: no target is healthy; trying them all \(panic mode\)/)
})
