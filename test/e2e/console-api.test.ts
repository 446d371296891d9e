// The admin API calls the web console reads: traffic history and its event stream, upstream
// targets, reload reports, policy source and explain, against a real gateway and upstreams.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import {
  ADMIN_TOKEN,
  policyDir,
  removeDir,
  runCli,
  startGateway,
  startUpstream,
  writePolicies,
  type RunningGateway,
  type Upstream,
} from '../helpers/gateway.ts'
import { expectProblem } from '../helpers/http.ts'
import { until } from '../helpers/poll.ts'

const KEYS = { KEY_A: 'ka-console-0123456789', KEY_B: 'kb-console-0123456789' }

let up: Upstream
let sick: Upstream
let sickDown = false
let upHits = 0
let gw: RunningGateway
let dir: string

const MAIN = (upUrl: string, sickUrl: string) => `
upstream up { target ${upUrl} }
upstream probed { target ${sickUrl}; health GET /healthz every 200ms fails 1 }

match GET /open { proxy up }
match GET /metered {
  require key
  throttle 2/min per app
  proxy up
}
match GET /members {
  require key
  allow app app_b
  proxy up
}
match GET /probed/{p} { proxy probed }
`

beforeAll(async () => {
  up = startUpstream(() => {
    upHits++
    return new Response('ok')
  })
  sick = startUpstream((req) => {
    if (new URL(req.url).pathname === '/healthz') return new Response(sickDown ? 'down' : 'ok', { status: sickDown ? 503 : 200 })
    return new Response('sick ok')
  })
  dir = policyDir({
    'main.policy': MAIN(up.url, sick.url),
    'apps/apps.policy': 'app app_a { api-key env KEY_A }\napp app_b { api-key env KEY_B }\n',
  })
  gw = await startGateway(dir, ['--no-watch'], KEYS)
})

afterAll(async () => {
  await gw?.stop()
  up?.stop()
  sick?.stop()
  removeDir(dir)
})

interface Point {
  t: number
  requests: number
  errors: Record<string, number>
  statuses: Record<string, number>
  p50_ms: number | null
  p99_ms: number | null
  throttled: { app: string; route: string; n: number }[]
  auth_failures: { app: string; route: string; code: string; n: number }[]
}

const adminJson = async <T = any>(path: string, init?: RequestInit): Promise<T> => {
  const res = await gw.admin(path, init)
  expect(res.status).toBe(200)
  return (await res.json()) as T
}

const sum = (points: Point[], f: (p: Point) => number) => points.reduce((n, p) => n + f(p), 0)

describe('GET /traffic', () => {
  test('points move under a bounded load: requests, errors by code, p50/p99, throttled and auth failures by app and route', async () => {
    const before = await adminJson<{ points: Point[] }>('/traffic?minutes=15')
    const since = before.points.at(-1)?.t ?? 0
    const key = (k: string) => ({ headers: { 'x-api-key': k } })
    const answers: number[] = []
    for (let i = 0; i < 20; i++) answers.push((await gw.fetch('/open')).status)
    for (let i = 0; i < 4; i++) answers.push((await gw.fetch('/metered', key(KEYS.KEY_A))).status)
    for (let i = 0; i < 3; i++) answers.push((await gw.fetch('/members', key(KEYS.KEY_A))).status)
    for (let i = 0; i < 2; i++) answers.push((await gw.fetch('/members')).status)
    answers.push((await gw.fetch('/nowhere')).status)
    expect(answers.filter((s) => s === 200).length).toBe(22)
    expect(answers.filter((s) => s === 429).length).toBe(2)

    // Every request ends up in exactly one point after `since`, within a couple of seconds.
    const points = await until(
      async () => (await adminJson<{ interval_s: number; points: Point[] }>('/traffic?minutes=1')).points.filter((p) => p.t > since),
      (ps) => sum(ps, (p) => p.requests) >= 30,
      5_000,
      'all 30 requests in the traffic points',
    )
    expect(sum(points, (p) => p.requests)).toBe(30)
    const errors = (code: string) => sum(points, (p) => p.errors[code] ?? 0)
    expect([errors('rate_limited'), errors('forbidden'), errors('unauthenticated'), errors('no_route')]).toEqual([2, 3, 2, 1])
    expect(sum(points, (p) => p.statuses['2xx'] ?? 0)).toBe(22)
    const throttled = points.flatMap((p) => p.throttled)
    expect(throttled.every((t) => t.app === 'app_a' && t.route === 'GET /metered')).toBe(true)
    expect(sum(throttled as never, (t: any) => t.n)).toBe(2)
    const auth = (app: string, code: string) =>
      points.flatMap((p) => p.auth_failures).reduce((n, a) => n + (a.app === app && a.route === 'GET /members' && a.code === code ? a.n : 0), 0)
    expect(auth('app_a', 'forbidden')).toBe(3)
    expect(auth('', 'unauthenticated')).toBe(2)
    for (const p of points) {
      if (p.requests === 0) expect(p.p50_ms).toBeNull()
      else {
        expect(p.p50_ms).toBeGreaterThan(0)
        expect(p.p99_ms!).toBeGreaterThanOrEqual(p.p50_ms!)
        expect(p.p99_ms!).toBeLessThan(10_000)
      }
    }
  })

  test('one point a second, oldest first; minutes is bounded', async () => {
    const { interval_s, points } = await until(
      () => adminJson<{ interval_s: number; points: Point[] }>('/traffic?minutes=1'),
      (b) => b.points.length >= 3,
      5_000,
      'three points',
    )
    expect(interval_s).toBe(1)
    expect(points.length).toBeLessThanOrEqual(60)
    for (let i = 1; i < points.length; i++) {
      const gap = points[i]!.t - points[i - 1]!.t
      expect(gap).toBeGreaterThan(500)
      expect(gap).toBeLessThan(2_000)
    }
    for (const bad of ['16', '0', 'ten', '1.5']) await expectProblem(await gw.admin(`/traffic?minutes=${bad}`), 400, 'bad_request')
  })
})

// Reads server-sent events from a response body until `want` of them have come.
async function readEvents(
  reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> },
  want: number,
): Promise<{ event: string; data: string }[]> {
  const out: { event: string; data: string }[] = []
  const decoder = new TextDecoder()
  let buf = ''
  while (out.length < want) {
    const { done, value } = await reader.read()
    if (done) throw new Error(`the stream ended after ${out.length} events`)
    buf += decoder.decode(value, { stream: true })
    let end
    while ((end = buf.indexOf('\n\n')) !== -1) {
      const block = buf.slice(0, end)
      buf = buf.slice(end + 2)
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message'
      const data = /^data: (.*)$/m.exec(block)?.[1] ?? ''
      out.push({ event, data })
    }
  }
  return out
}

test('GET /traffic/stream: history, then a point each second; a client leaving frees it', async () => {
  const streams = async () => (await adminJson<{ streams: number }>('/traffic')).streams
  expect(await streams()).toBe(0)
  const abort = new AbortController()
  const res = await gw.admin('/traffic/stream', { signal: abort.signal })
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toBe('text/event-stream')
  const reader = res.body!.getReader()
  const events = await Promise.race([
    readEvents(reader, 3),
    Bun.sleep(5_000).then(() => {
      throw new Error('no 3 events within 5 s')
    }),
  ])
  expect(events.map((e) => e.event)).toEqual(['history', 'point', 'point'])
  const history = JSON.parse(events[0]!.data) as Point[]
  expect(history.length).toBeGreaterThan(0)
  expect(history.length).toBeLessThanOrEqual(60)
  const [p1, p2] = [JSON.parse(events[1]!.data) as Point, JSON.parse(events[2]!.data) as Point]
  expect(p1.t).toBeGreaterThan(history.at(-1)!.t)
  expect(p2.t).toBeGreaterThan(p1.t)
  expect(Object.keys(p1).sort()).toEqual(['auth_failures', 'errors', 'p50_ms', 'p99_ms', 'requests', 'statuses', 't', 'throttled'])
  expect(await streams()).toBe(1)
  abort.abort()
  await until(streams, (n) => n === 0, 3_000, 'the stream to be let go')
})

test('GET /upstreams: targets with their counts; a target whose health checks fail turns unhealthy', async () => {
  type Target = { url: string; healthy: boolean; active: number; attempts: number; failures: number; retries: number; ejected: boolean }
  const targets = async () => {
    const body = await adminJson<{ upstreams: { name: string; targets: Target[] }[] }>('/upstreams')
    return Object.fromEntries(body.upstreams.map((u) => [u.name, u.targets]))
  }
  expect((await gw.fetch('/probed/x')).status).toBe(200)
  const first = await targets()
  expect(Object.keys(first).sort()).toEqual(['probed', 'up'])
  expect(first.up![0]!.url).toBe(up.url)
  expect(first.up![0]!.attempts).toBeGreaterThanOrEqual(1)
  expect(first.probed).toEqual([{ url: sick.url, healthy: true, active: 0, attempts: 1, failures: 0, retries: 0, ejected: false }])
  sickDown = true
  try {
    const down = await until(targets, (t) => t.probed![0]!.healthy === false, 3_000, 'the probed target to turn unhealthy')
    expect(down.probed![0]!.ejected).toBe(false) // out by its health checks, not by failed tries
  } finally {
    sickDown = false
  }
  await until(targets, (t) => t.probed![0]!.healthy, 3_000, 'the probed target to come back')
})

describe('GET /source', () => {
  test('a loaded policy file by its path in the policy directory, or as a route location names it', async () => {
    const { routes } = await adminJson<{ routes: { method: string; pattern: string; location: string }[] }>('/routes')
    const metered = routes.find((r) => r.pattern === '/metered')!
    const [, file, line] = /^(.*):(\d+):\d+$/.exec(metered.location)!
    const byRel = await adminJson<{ file: string; lines: string[]; line: number }>(`/source?file=main.policy&line=${line}`)
    expect(byRel.file).toBe('main.policy')
    expect(byRel.line).toBe(Number(line))
    expect(byRel.lines[byRel.line - 1]).toBe('match GET /metered {')
    expect(byRel.lines.join('\n')).toBe(MAIN(up.url, sick.url))
    const byLocation = await adminJson<{ file: string; lines: string[] }>(`/source?file=${encodeURIComponent(file!)}&line=${line}`)
    expect(byLocation).toEqual(byRel)
    const nested = await adminJson<{ file: string; lines: string[]; line: null }>('/source?file=apps/apps.policy')
    expect(nested.file).toBe('apps/apps.policy')
    expect(nested.lines[0]).toBe('app app_a { api-key env KEY_A }')
    expect(nested.line).toBeNull()
  })

  test('refuses .., paths outside the directory and files the program was not built from (404); bad parameters (400)', async () => {
    for (const file of ['../main.policy', 'apps/../main.policy', '../../etc/passwd', '/etc/passwd', 'other.policy', join(dir, '..', 'x.policy')])
      await expectProblem(await gw.admin(`/source?file=${encodeURIComponent(file)}`), 404, 'no_route')
    await expectProblem(await gw.admin('/source'), 400, 'bad_request')
    await expectProblem(await gw.admin('/source?file=main.policy&line=zero'), 400, 'bad_request')
    await expectProblem(await gw.admin('/source?file=main.policy&line=9999'), 400, 'bad_request')
  })
})

describe('POST /explain', () => {
  const explain = (body: unknown) =>
    gw.admin('/explain', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    })

  test('a 403 names the refusing directive; nothing real is contacted and no token is needed', async () => {
    const hits = upHits
    const res = await explain({ method: 'get', path: '/members', app: 'app_a' })
    expect(res.status).toBe(200)
    const { trace, text, answer } = (await res.json()) as any
    expect(trace.status).toBe(403)
    expect(trace.gatewayError).toBe('forbidden')
    expect(trace.route.id).toBe('GET /members')
    const refusing = trace.steps.find((s: { outcome: string }) => s.outcome === 'refused')
    expect(refusing.directive).toBe('allow app')
    expect(refusing.at).toMatch(/main\.policy:\d+$/)
    expect(text).toContain('allow app')
    expect(text).toContain('403')
    expect(answer.status).toBe(403)
    // A pass goes to a local mock: the trace shows what the real upstream would have received.
    const pass: any = await (await explain({ method: 'GET', path: '/open?x=1', headers: { 'x-trace': 'yes' } })).json()
    expect(pass.trace.status).toBe(200)
    expect(pass.trace.forwarded[0].upstream).toBe(`up ${up.url}`)
    expect(pass.trace.forwarded[0].target).toBe('/open?x=1')
    expect(upHits).toBe(hits)
  })

  test('explaining consumes nothing of the live limits', async () => {
    for (let i = 0; i < 3; i++) {
      const r: any = await (await explain({ method: 'GET', path: '/metered', app: 'app_b' })).json()
      expect(r.trace.status).toBe(200) // each explain starts from a fresh store: 2/min never runs out
    }
    expect((await gw.fetch('/metered', { headers: { 'x-api-key': KEYS.KEY_B } })).status).toBe(200)
  })

  test('bad bodies: 400 problem+json naming the field; too large: 413; an unknown app: 400', async () => {
    const detail = async (res: Response, status: number, code: string) => (await expectProblem(res, status, code)).detail as string
    expect(await detail(await explain({ path: '/x' }), 400, 'bad_request')).toContain('method')
    expect(await detail(await explain({ method: 'GET', path: 'x' }), 400, 'bad_request')).toContain('path')
    expect(await detail(await explain({ method: 'GET', path: '/x', verb: 1 }), 400, 'bad_request')).toContain('verb: unknown field')
    expect(await detail(await explain({ method: 'GET', path: '/x', ip: 'nope' }), 400, 'bad_request')).toContain('ip')
    expect(await detail(await explain({ method: 'GET', path: '/x', headers: { 'bad name': 'v' } }), 400, 'bad_request')).toContain('headers')
    expect(await detail(await explain('{"method":'), 400, 'bad_request')).toContain('not valid JSON')
    expect(await detail(await explain({ method: 'GET', path: '/x', body: 'x'.repeat(70_000) }), 413, 'payload_too_large')).toContain('64 KiB')
    expect(await detail(await explain({ method: 'GET', path: '/members', app: 'nobody' }), 400, 'bad_request')).toContain("no app 'nobody'")
  })
})

describe('under --workers the primary adds up what the workers report', () => {
  let wgw: RunningGateway
  let wdir: string

  beforeAll(async () => {
    const probe = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
    const port = probe.port!
    probe.stop(true)
    wdir = policyDir({
      'main.policy': `upstream probed { target ${sick.url}; health GET /healthz every 200ms fails 1 }
app app_a { api-key env KEY_A }
match GET /w { respond 200 text "w" }
match GET /wp { proxy probed }
match GET /deny {
  require key
  proxy probed
}
`,
    })
    wgw = await startGateway(wdir, ['--workers', '2', '--port', String(port), '--no-watch'], KEYS)
  })
  afterAll(async () => {
    await wgw?.stop()
    removeDir(wdir)
  })

  test("GET /traffic: every worker's requests, errors and auth failures, once each", async () => {
    const since = ((await (await wgw.admin('/traffic')).json()) as { points: Point[] }).points.at(-1)?.t ?? 0
    const answers = await Promise.all([
      ...Array.from({ length: 40 }, () => wgw.fetch('/w').then((r) => r.status)),
      ...Array.from({ length: 3 }, () => wgw.fetch('/deny').then((r) => r.status)),
    ])
    expect(answers.filter((s) => s === 401)).toHaveLength(3)
    const points = await until(
      async () => ((await (await wgw.admin('/traffic?minutes=1')).json()) as { points: Point[] }).points.filter((p) => p.t > since),
      (ps) => sum(ps, (p) => p.requests) >= 43,
      5_000,
      "the workers' 43 requests",
    )
    expect(sum(points, (p) => p.requests)).toBe(43)
    expect(sum(points, (p) => p.errors.unauthenticated ?? 0)).toBe(3)
    const auth = points.flatMap((p) => p.auth_failures)
    expect(auth.every((a) => a.app === '' && a.route === 'GET /deny' && a.code === 'unauthenticated')).toBe(true)
    expect(auth.reduce((n, a) => n + a.n, 0)).toBe(3)
  })

  test("GET /upstreams: the workers' targets; unhealthy once the workers' checks fail", async () => {
    type Body = {
      workers: number
      upstreams: { name: string; targets: { url: string; healthy: boolean; attempts: number; workers_healthy: number }[] }[]
    }
    const target = async () => {
      const body = (await (await wgw.admin('/upstreams')).json()) as Body
      return { workers: body.workers, ...body.upstreams.find((u) => u.name === 'probed')!.targets[0]! }
    }
    expect((await wgw.fetch('/wp')).status).toBe(200)
    const before = await until(target, (t) => t.workers === 2 && t.attempts === 1, 3_000, 'both workers reporting one try')
    expect(before).toMatchObject({ url: sick.url, healthy: true, workers_healthy: 2 })
    sickDown = true
    try {
      const down = await until(target, (t) => !t.healthy, 3_000, 'the target to turn unhealthy in the workers')
      expect(down.workers_healthy).toBeLessThan(2)
    } finally {
      sickDown = false
    }
  })
})

// Last: it changes the program.
test('GET /reloads: the version, the last reload, a rejected reload rendered like gateway check', async () => {
  const first = await adminJson('/reloads')
  expect(first.last).toBeNull()
  expect(first.rejected).toBeNull()
  expect(new Date(first.loaded_at).getTime()).toBeGreaterThan(Date.now() - 120_000)
  const reload = () => gw.admin('/reload', { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })

  writePolicies(dir, { 'broken.policy': 'match GET /broken {\n  proxy nowhere\n}\n' })
  expect((await reload()).status).toBe(422)
  const rejected = await adminJson('/reloads')
  expect(rejected.version).toBe(first.version)
  expect(rejected.rejected.reason).toBe('admin API')
  expect(rejected.rejected.diagnostics[0].file).toMatch(/broken\.policy$/)
  const check = await runCli(['check', dir], KEYS)
  expect(check.code).toBe(1)
  expect(rejected.rejected.text).toBe(check.stderr)
  expect(rejected.rejected.text).toContain('broken.policy:2:')

  rmSync(join(dir, 'broken.policy'))
  writePolicies(dir, { 'extra.policy': 'match GET /extra { proxy up }\n' })
  expect((await reload()).status).toBe(200)
  const applied = await adminJson('/reloads')
  // The explains above built programs of their own: they took no version number.
  expect(applied.version).toBe(first.version + 1)
  expect(applied.rejected).toBeNull()
  expect(applied.last.source).toBe('admin API')
  expect(applied.last.at).toBe(applied.loaded_at)
  expect(applied.last.changes.routes.added).toEqual(['GET /extra'])
  // The new program's files only.
  expect((await adminJson('/source?file=extra.policy')).lines[0]).toBe('match GET /extra { proxy up }')
})
