// The decision trace: a program built with `explain` records what each directive decided, and
// Program.explain returns it with the answer. Real upstream servers on 127.0.0.1, real policies.
import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildProgram, renderTrace, type DecisionTrace, type StepRecord } from '../../src/index.ts'
import type { Program } from '../../src/runtime/program.ts'
import type { RequestContext } from '../../src/runtime/context.ts'
import { memoryStore } from '../../src/store/memory.ts'
import { SinkManager } from '../../src/log/sinks/manager.ts'
import { AccessLog } from '../../src/log/access-log.ts'
import { Metrics } from '../../src/metrics/metrics.ts'
import { createObserver } from '../../src/runtime/observe.ts'
import { STAGES } from '../../src/runtime/context.ts'
import type { Echo } from '../helpers/http.ts'
import { policyDir, removeDir, startRecordingUpstream } from '../helpers/gateway.ts'
import { until } from '../helpers/poll.ts'

const hits: Echo[] = []
const upstream = startRecordingUpstream(hits)
const logDir = mkdtempSync(join(tmpdir(), 'portcullis-decisions-log-'))
const KEY = 'k-partner-a-0123'

// Line numbers matter: the tests name them.
const POLICY = `upstream orders { target ${upstream.url}/base }
app partner_a {
  key "ak_partner_a"
  api-key env PA_KEY
}
sink local { file "${logDir}/access.log" }
match GET /orders/{id} {
  require key
  when request.header.X-Env = "beta" { set header X-Beta = "1" }
  allow ip 127.0.0.1, 10.0.0.0/8
  throttle 3/min per app
  rewrite path /o/{id}
  proxy orders
  set response header X-From = "gw"
  log to local
}
match GET /cached {
  cache response 30s
  respond 200 text "fresh"
}
match POST /only-post { respond 200 text "posted" }
match GET /maint {
  when request.header.X-Maint = "1" { respond 503 text "down" }
  cors origins "https://app.example.com" methods GET
  respond 200 text "up"
}
`
const dir = policyDir({ 'main.policy': POLICY })
const at = (line: number) => `${dir}/main.policy:${line}`
const env = { PA_KEY: KEY }
const programs: Program[] = []

afterAll(async () => {
  upstream.stop()
  for (const p of programs) await p.dispose()
  removeDir(dir)
  removeDir(logDir)
})

async function build(explain = true): Promise<Program> {
  const built = await buildProgram(dir, { explain, env, store: memoryStore() })
  if (!built.program) throw new Error(JSON.stringify(built.diagnostics))
  programs.push(built.program)
  return built.program
}

const keyed = (extra: Record<string, string> = {}) => new Request('http://gw.test/orders/7?q=1', { headers: { 'x-api-key': KEY, ...extra } })
const brief = (s: StepRecord) => [s.stage, s.directive, s.outcome]
const stepOf = (t: DecisionTrace, directive: string) => t.steps.find((s) => s.directive.startsWith(directive))

describe('Program.explain', () => {
  test('a pass that proxies: every stage recorded in stage order, the upstream named with its target', async () => {
    const program = await build()
    const before = hits.length
    const { response, trace } = await program.explain(keyed())
    expect(response.status).toBe(200)
    expect(response.headers.get('x-from')).toBe('gw')
    expect(hits.length).toBe(before + 1)
    expect(hits.at(-1)!.raw).toBe('/base/o/7?q=1')
    expect(trace.route).toEqual({ id: 'GET /orders/{id}', location: expect.stringMatching(/main\.policy:7:\d+$/) })
    expect(trace.steps.map(brief)).toEqual([
      ['access', 'require key', 'passed'],
      ['access', 'allow ip', 'passed'],
      ['access', 'throttle 3/60s per app', 'passed'],
      ['rewrite', 'set header (when request.header.X-Env = "beta")', 'skipped'],
      ['rewrite', 'rewrite path', 'passed'],
      ['proxy', 'proxy orders', 'answered'],
      ['response', 'set response header', 'passed'],
    ])
    const order = trace.steps.map((s) => STAGES.indexOf(s.stage))
    expect(order).toEqual([...order].sort((a, b) => a - b))
    expect(trace.steps.map((s) => s.at)).toEqual([8, 10, 11, 9, 12, 13, 14].map(at))
    expect(stepOf(trace, 'require key')!.detail).toBe('caller: app partner_a, via key')
    expect(stepOf(trace, 'throttle')!.detail).toBe('limit: admitted')
    expect(stepOf(trace, 'rewrite path')!.detail).toBe('path → /o/7')
    expect(stepOf(trace, 'proxy')).toMatchObject({ status: 200, detail: `proxied to orders ${upstream.url}/base/o/7?q=1 → 200` })
    // The log stage runs once a serving gateway has delivered the answer: not by explain.
    expect(trace.notReached).toEqual([{ stage: 'log', directive: 'log to local', at: at(15) }])
    expect(trace.status).toBe(200)
    expect(trace.gatewayError).toBeNull()
    expect(trace.request).toEqual({ method: 'GET', target: '/orders/7?q=1' })
  })

  test('a `when` step is skipped when its guard does not hold, and runs when it does', async () => {
    const program = await build()
    const skipped = (await program.explain(keyed())).trace
    expect(stepOf(skipped, 'set header (when')).toEqual({
      stage: 'rewrite',
      directive: 'set header (when request.header.X-Env = "beta")',
      at: at(9),
      outcome: 'skipped',
      detail: 'the guard does not hold',
    })
    const { trace } = await program.explain(keyed({ 'x-env': 'beta' }))
    expect(stepOf(trace, 'set header (when')!.outcome).toBe('passed')
    expect(hits.at(-1)!.headers['x-beta']).toBe('1')
  })

  test('a 401 from require key names the directive and its file:line; later steps are not reached', async () => {
    const program = await build()
    const before = hits.length
    const { response, trace } = await program.explain('http://gw.test/orders/7')
    expect(response.status).toBe(401)
    expect(hits.length).toBe(before)
    expect(trace.steps[0]).toEqual({
      stage: 'access',
      directive: 'require key',
      at: at(8),
      outcome: 'refused',
      status: 401,
      gatewayError: 'unauthenticated',
      detail: expect.stringContaining('key'),
    })
    // Header steps of the response stage run on gateway errors too.
    expect(trace.steps.slice(1).map(brief)).toEqual([['response', 'set response header', 'passed']])
    expect(trace.notReached.map((s) => s.directive)).toEqual([
      'allow ip',
      'throttle 3/60s per app',
      'set header (when request.header.X-Env = "beta")',
      'rewrite path',
      'proxy orders',
      'log to local',
    ])
    expect(trace).toMatchObject({ status: 401, gatewayError: 'unauthenticated' })
  })

  test('a 403 from allow ip', async () => {
    const program = await build()
    const { response, trace } = await program.explain(keyed(), { ip: '192.0.2.9', tls: false })
    expect(response.status).toBe(403)
    expect(trace.steps.map(brief).slice(0, 2)).toEqual([
      ['access', 'require key', 'passed'],
      ['access', 'allow ip', 'refused'],
    ])
    expect(stepOf(trace, 'allow ip')).toMatchObject({ at: at(10), status: 403, gatewayError: 'forbidden' })
    expect(trace.gatewayError).toBe('forbidden')
  })

  test('a 429 from throttle, after the admitted ones', async () => {
    const program = await build()
    for (let i = 0; i < 3; i++) expect((await program.explain(keyed())).trace.status).toBe(200)
    const { trace } = await program.explain(keyed())
    expect(stepOf(trace, 'throttle')).toMatchObject({
      stage: 'access',
      at: at(11),
      outcome: 'refused',
      status: 429,
      gatewayError: 'rate_limited',
    })
    expect(trace.notReached.map((s) => s.stage)).toEqual(['rewrite', 'rewrite', 'proxy', 'log'])
    expect(trace.status).toBe(429)
  })

  test('a cache hit answers in the terminal’s place', async () => {
    const program = await build()
    const miss = (await program.explain('http://gw.test/cached')).trace
    expect(miss.steps.map(brief)).toEqual([
      ['proxy', 'cache response 30s', 'passed'],
      ['proxy', 'respond', 'answered'],
      ['response', 'cache response 30s', 'passed'],
    ])
    expect(miss.steps[0]!.detail).toBe('no stored answer')
    const hit = (await program.explain('http://gw.test/cached')).trace
    expect(hit.steps[0]).toMatchObject({ stage: 'proxy', outcome: 'answered', status: 200, detail: 'a stored answer' })
    expect(hit.notReached.map((s) => s.directive)).toEqual(['respond'])
  })

  test('a guarded terminal: skipped when its guard does not hold, answering when it does', async () => {
    const program = await build()
    const up = (await program.explain('http://gw.test/maint')).trace
    expect(up.steps.filter((s) => s.stage === 'proxy')).toEqual([
      { stage: 'proxy', directive: 'respond (when request.header.X-Maint = "1")', at: at(23), outcome: 'skipped', detail: 'the guard does not hold' },
      { stage: 'proxy', directive: 'respond', at: at(25), outcome: 'answered', status: 200 },
    ])
    const down = (await program.explain(new Request('http://gw.test/maint', { headers: { 'x-maint': '1' } }))).trace
    expect(down.steps.filter((s) => s.stage === 'proxy').map(brief)).toEqual([['proxy', 'respond (when request.header.X-Maint = "1")', 'answered']])
    expect(down.status).toBe(503)
    expect(down.notReached.map((s) => s.directive)).toEqual(['respond'])
  })

  test('a CORS preflight is answered by the route’s cors, before its access stage', async () => {
    const program = await build()
    const preflight = new Request('http://gw.test/maint', {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' },
    })
    const { response, trace } = await program.explain(preflight)
    expect(response.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
    expect(trace.steps[0]).toMatchObject({
      stage: 'access',
      directive: expect.stringMatching(/^cors/),
      at: at(24),
      outcome: 'answered',
      status: response.status,
    })
    expect(trace.notReached.map((s) => s.stage)).toContain('proxy')
  })

  test('no route: the trace says why (404, 405)', async () => {
    const program = await build()
    const none = (await program.explain('http://gw.test/nowhere')).trace
    expect(none).toMatchObject({ route: null, reason: 'no route for GET /nowhere', status: 404, gatewayError: 'no_route', steps: [] })
    const method = (await program.explain('http://gw.test/only-post')).trace
    expect(method).toMatchObject({ route: null, status: 405, gatewayError: 'method_not_allowed' })
    expect(method.reason).toContain('allowed: POST')
  })

  test('the log stage is recorded when a serving observer runs it, after delivery', async () => {
    const sinks = new SinkManager({ spoolDir: logDir, redisUrl: null, live: true })
    const lines: string[] = []
    const observer = createObserver(new AccessLog({ write: (l) => void lines.push(l), flush: () => {} }, 'json'), new Metrics())
    const built = await buildProgram(dir, { explain: true, env, store: memoryStore(), observer, sinks })
    const program = built.program!
    programs.push(program)
    let ctx: RequestContext | null = null
    const res = (await program.handle(keyed(), { ip: '127.0.0.1', tls: false, upgrade: null }, (c) => void (ctx = c)))!
    await res.text()
    const seen = ctx as RequestContext | null
    const log = await until(
      () => seen?.decisions?.find((s) => s.stage === 'log'),
      (s) => s !== undefined,
      2_000,
      'a log-stage record',
    )
    expect(log).toEqual({ stage: 'log', directive: 'log to local', at: at(15), outcome: 'passed' })
    expect(lines).toHaveLength(1)
    await sinks.close()
  })
})

describe('a program built without explain', () => {
  test('records nothing, wraps nothing, and refuses explain() with a clear error', async () => {
    const program = await build(false)
    let ctx: RequestContext | null = null
    const res = (await program.handle(keyed(), { ip: '127.0.0.1', tls: false, upgrade: null }, (c) => void (ctx = c)))!
    expect(res.status).toBe(200)
    expect((ctx as RequestContext | null)?.decisions).toBeNull()
    expect(program.routes[0]!.steps).toBeUndefined()
    await expect(program.explain('http://gw.test/orders/7')).rejects.toThrow('Program.explain needs a program built with { explain: true }')
    // The same route built with explain runs recorders in place of the directives' own functions.
    const explained = await build(true)
    expect(explained.routes[0]!.plan.access[0]).not.toBe(program.routes[0]!.plan.access[0])
    expect(explained.routes[0]!.steps!.length).toBe(8)
  })
})

describe('renderTrace', () => {
  test('names the route, each stage and the refusing directive, within 100 columns', async () => {
    const program = await build()
    const { trace } = await program.explain('http://gw.test/orders/7')
    const text = renderTrace(trace)
    for (const line of text.trimEnd().split('\n')) expect(line.length).toBeLessThanOrEqual(100)
    const lines = text.trimEnd().split('\n')
    expect(lines[0]).toBe('GET /orders/7')
    expect(lines[1]).toMatch(/^route GET \/orders\/\{id\}  \(.*main\.policy:7:\d+\)$/)
    expect(lines).toContain('access')
    expect(lines.find((l) => l.includes('require key'))).toMatch(
      new RegExp(`^  ✗ refused +require key +${at(8).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`),
    )
    expect(text).toContain('401 unauthenticated:')
    expect(lines.find((l) => l.includes('proxy orders'))).toMatch(/^  · not reached +proxy orders/)
    expect(lines.at(-1)).toBe('answer 401 unauthenticated')
  })
})
