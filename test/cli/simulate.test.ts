// `gateway simulate DIR TRACE`: a recorded trace replayed offline on the kit's clock gives the
// same admitted/throttled/refused counts per app and route as the real run that recorded it.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { policyDir, removeDir, runCli, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { until } from '../helpers/poll.ts'
import { outcomeOf, parseTrace, type Outcome, type Report } from '../../src/cli/simulate.ts'

setDefaultTimeout(30_000)

const KEYS = { ALPHA_KEY: 'ak-alpha-0123456789', BETA_KEY: 'ak-beta-0123456789' }

let up: Upstream
let dir: string
let gw: RunningGateway
const observed = new Map<string, Record<Outcome, number>>()

const policy = (upstream: string) => `
app alpha {
  key "alpha"
  api-key env ALPHA_KEY
}
app beta {
  key "beta"
  api-key env BETA_KEY
}
upstream svc { target ${upstream} }
match GET /orders/{id} {
  require key
  throttle 7/min per app
  quota 12/day per app
  proxy svc
}
match GET /open/{id} {
  throttle 5/min per ip
  proxy svc
}
match POST /admin { allow ip 10.0.0.0/8; proxy svc }
`

beforeAll(async () => {
  up = startUpstream(() => Response.json({ ok: true }))
  dir = policyDir({ 'main.policy': policy(up.url) })
  gw = await startGateway(dir, [], KEYS)
})

afterAll(async () => {
  await gw?.stop()
  up?.stop()
  removeDir(dir)
})

const zero = (): Record<Outcome, number> => ({ admitted: 0, throttled: 0, refused: 0, failed: 0 })

// The real run: concurrent callers, some over their limits, some refused outright.
async function realRun(): Promise<void> {
  const calls: { path: string; method?: string; key?: string; app: string }[] = []
  for (let i = 0; i < 20; i++) calls.push({ path: `/orders/${i}`, key: KEYS.ALPHA_KEY, app: 'alpha' })
  for (let i = 0; i < 4; i++) calls.push({ path: `/orders/${i}`, key: KEYS.BETA_KEY, app: 'beta' })
  for (let i = 0; i < 3; i++) calls.push({ path: `/orders/${i}`, app: '-' })
  for (let i = 0; i < 9; i++) calls.push({ path: `/open/${i}`, app: '-' })
  for (let i = 0; i < 2; i++) calls.push({ path: '/admin', method: 'POST', app: '-' })
  await Promise.all(
    calls.map(async (c) => {
      const res = await gw.fetch(c.path, { method: c.method ?? 'GET', headers: c.key ? { 'x-api-key': c.key } : {} })
      await res.arrayBuffer()
      const route = c.path.startsWith('/orders') ? 'GET /orders/{id}' : c.path.startsWith('/open') ? 'GET /open/{id}' : 'POST /admin'
      const key = `${c.app} ${route}`
      const counts = observed.get(key) ?? zero()
      counts[outcomeOf(res.status, res.headers.get('gateway-error'))]++
      observed.set(key, counts)
    }),
  )
}

describe('gateway simulate', () => {
  test('replaying the access log of a real run gives the same counts per app and route', async () => {
    await realRun()
    const lines = await until(
      () => gw.accessLog(),
      (l) => l.length >= 38,
      5_000,
      'the 38 access log lines',
    )
    // The log as the gateway wrote it (with an event line among them, as a real file has).
    const trace = join(dir, 'access.log')
    writeFileSync(trace, `${lines.map((l) => JSON.stringify(l)).join('\n')}\nportcullis: not a request line\n`)
    const { code, stdout, stderr } = await runCli(['simulate', dir, trace, '--json'], KEYS)
    expect(stderr).toBe('')
    expect(code).toBe(0)
    const report = JSON.parse(stdout) as Report
    const simulated = new Map(report.rows.map((r) => [`${r.app} ${r.route}`, r.simulated]))
    expect(Object.fromEntries(simulated)).toEqual(Object.fromEntries(observed))
    // What the real run answered, as the log recorded it, agrees too.
    for (const r of report.rows) expect(r.recorded).toEqual(r.simulated)
    expect(observed.get('alpha GET /orders/{id}')).toEqual({ admitted: 7, throttled: 13, refused: 0, failed: 0 })
    expect(observed.get('- GET /open/{id}')).toEqual({ admitted: 5, throttled: 4, refused: 0, failed: 0 })
    expect(observed.get('- POST /admin')).toEqual({ admitted: 0, throttled: 0, refused: 2, failed: 0 })
    expect(report.skipped).toEqual([])
  })

  test('a CSV trace (time, app, route) follows its own clock: windows and calendar days pass', async () => {
    const rows = ['time,app,route']
    // alpha: 7 within a minute (the 8th refused), then 5 more a minute later, then the day's
    // quota of 12 is spent (the 13th refused) until the next UTC day.
    const t0 = Date.parse('2026-12-01T23:50:00Z')
    const at = (ms: number) => new Date(t0 + ms).toISOString()
    for (let i = 0; i < 8; i++) rows.push(`${at(i * 1000)},alpha,GET /orders/{id}`)
    for (let i = 0; i < 6; i++) rows.push(`${at(70_000 + i * 1000)},alpha,GET /orders/{id}`)
    rows.push(`${at(11 * 60_000)},alpha,GET /orders/{id}`) // 2026-12-02 00:01: a new day
    rows.push(`${at(1000)},,"GET /orders/{id}"`)
    const trace = join(dir, 'trace.csv')
    writeFileSync(trace, `${rows.join('\n')}\n`)
    const { code, stdout } = await runCli(['simulate', dir, trace], KEYS)
    expect(code).toBe(0)
    const line = (app: string) => stdout.split('\n').find((l) => l.startsWith(`${app} `) && l.includes('GET /orders/{id}'))!
    expect(line('alpha').split(/\s+/).slice(-5)).toEqual(['15', '13', '2', '0', '0'])
    expect(line('-').split(/\s+/).slice(-5)).toEqual(['1', '0', '0', '1', '0'])
    expect(stdout).toMatch(/^total\s+16\s+13\s+2\s+1\s+0$/m)
  })

  test('an app the policies do not know is skipped and said, not counted', async () => {
    const trace = join(dir, 'ghost.csv')
    writeFileSync(trace, 'time,app,route\n2026-12-02T10:00:00Z,ghost,GET /orders/{id}\n2026-12-02T10:00:00Z,alpha,GET /orders/{id}\n')
    const { code, stdout } = await runCli(['simulate', dir, trace], KEYS)
    expect(code).toBe(0)
    expect(stdout).toContain("skipped line 2: no app 'ghost' in the policies")
    expect(stdout).toMatch(/^total\s+1\s+1\s+0\s+0\s+0$/m)
  })

  test('misuse and bad traces: one line, exit 2; policies that do not check: their diagnostics, exit 1', async () => {
    const bad = join(dir, 'bad.csv')
    writeFileSync(bad, 'when,who\n1,2\n')
    const badTime = join(dir, 'bad-time.csv')
    writeFileSync(badTime, 'time,route\nyesterday,GET /open/1\n')
    for (const args of [
      ['simulate'],
      ['simulate', dir],
      ['simulate', dir, join(dir, 'missing.log')],
      ['simulate', dir, bad],
      ['simulate', dir, badTime],
      ['simulate', dir, bad, '--frobnicate'],
    ]) {
      const { code, stderr } = await runCli(args, KEYS)
      expect(code).toBe(2)
      expect(stderr.trim().split('\n').length).toBe(1)
      expect(stderr).toStartWith('gateway simulate:')
    }
    const broken = policyDir({ 'bad.policy': 'match GTE /x { respond 200 }\n' })
    try {
      const fine = join(dir, 'fine.csv')
      writeFileSync(fine, 'time,route\n2026-12-02T10:00:00Z,GET /x\n')
      const { code, stderr } = await runCli(['simulate', broken, fine], KEYS)
      expect(code).toBe(1)
      expect(stderr).toMatch(/bad\.policy:1:7: error: unknown HTTP method 'GTE'/)
    } finally {
      removeDir(broken)
    }
  })

  test('parseTrace reads the JSON access log and CSV with quoted cells', () => {
    const json = parseTrace(
      '{"time":"2026-12-02T10:00:00.000Z","method":"GET","path":"/a","query":"x=1","app":null,"ip":"10.1.2.3","status":429,"gateway_error":"rate_limited"}\n',
    )
    expect(json).toEqual([
      { line: 1, time: Date.parse('2026-12-02T10:00:00Z'), method: 'GET', target: '/a?x=1', app: null, ip: '10.1.2.3', recorded: 'throttled' },
    ])
    const csv = parseTrace('Time,App,Route,IP\n1764669600000,"alpha","GET,HEAD /files/{rest*}",10.0.0.1\n')
    expect(csv).toEqual([{ line: 2, time: 1764669600000, method: 'GET', target: '/files/x', app: 'alpha', ip: '10.0.0.1', recorded: null }])
  })
})
