// The stage order is written once (STAGES in runtime/context.ts). These tests observe that
// the compiler files each directive under the stage it declares (defaults first, then
// source order) and that a request runs the stages in STAGES order.
import { afterAll, describe, expect, test } from 'bun:test'
import { AccessLog } from '../../src/log/access-log.ts'
import { Metrics } from '../../src/metrics/metrics.ts'
import { buildProgram } from '../../src/compile/build-program.ts'
import { directives } from '../../src/directives/index.ts'
import { STAGES, type CompiledRoute, type Plan, type ResponseFn, type Stage } from '../../src/runtime/context.ts'
import { createHandler } from '../../src/runtime/handle.ts'
import { createObserver } from '../../src/runtime/observe.ts'
import { Program } from '../../src/runtime/program.ts'
import { Router } from '../../src/runtime/router.ts'
import { policyDir, removeDir, startUpstream } from '../helpers/gateway.ts'

let upstreamCalls = 0
const upstream = startUpstream((req) => {
  upstreamCalls++
  return new Response('from upstream', { headers: { 'x-from': 'upstream', 'x-order-seen': req.headers.get('x-order') ?? '' } })
})

// Source order deliberately differs from stage order.
const dir = policyDir({
  'main.policy': `defaults {
  set response header X-From = "defaults"
  set header X-Order = "defaults"
  remove header X-Debug
}
match GET /x {
  set response header X-Route = "route"
  proxy ${upstream.url}
  set header X-Order = "route"
  allow ip 127.0.0.1
  status deprecated
}
`,
})
afterAll(() => {
  upstream.stop()
  removeDir(dir)
})

async function build(): Promise<Program> {
  const built = await buildProgram(dir)
  if (!built.program) throw new Error(JSON.stringify(built.diagnostics))
  return built.program
}

describe('the compiler', () => {
  test('files each directive under the stage it declares: defaults first, then source order', async () => {
    const program = await build()
    const route = program.routes[0]!
    expect(Object.keys(route.stageNames)).toEqual([...STAGES])
    expect(route.stageNames).toEqual({
      access: ['allow ip', 'status'],
      rewrite: ['set header', 'remove header', 'set header'],
      proxy: [`proxy ${upstream.url}/`],
      response: ['set response header', 'set response header'],
      log: [],
    })
    const stageOf = new Map(directives.map((d) => [d.name, d.stage]))
    for (const stage of STAGES) for (const name of route.stageNames[stage]) expect(stageOf.get(name.split(' http')[0]!)).toBe(stage)
    expect(route.plan.access).toHaveLength(2)
    expect(route.plan.rewrite).toHaveLength(3)
    expect(route.plan.response).toHaveLength(2)
    void program.dispose()
  })
})

describe('a request', () => {
  test('runs the stages in STAGES order, then the log stage once the response is delivered', async () => {
    const route = (await build()).routes[0]!
    const calls: Stage[] = []
    const record = <F extends (...args: never[]) => unknown>(stage: Stage, fns: readonly F[]): F[] =>
      fns.map(
        (f) =>
          ((...args: Parameters<F>) => {
            calls.push(stage)
            return f(...args)
          }) as F,
      )
    const plan: Plan = {
      access: record('access', route.plan.access),
      rewrite: record('rewrite', route.plan.rewrite),
      lookups: [],
      terminal: record('proxy', [route.plan.terminal])[0]!,
      response: record('response', route.plan.response as ResponseFn[]),
      log: record('log', [...route.plan.log, () => {}]),
      early: route.plan.early,
    }
    const recorded: CompiledRoute = { ...route, plan }
    const router = new Router()
    router.add(recorded, [{ kind: 'literal', value: 'x' }])
    const lines: string[] = []
    const log = new AccessLog({ write: (l) => void lines.push(l), flush: () => {} }, 'json')
    const inflight = { count: 0, idle: null }
    const handler = createHandler({ router, trustProxy: null, observer: createObserver(log, new Metrics()), inflight })
    const program = new Program(1, [recorded], handler, [], inflight, null as never)

    const res = await program.fetch('http://gateway.test/x')
    expect(await res.text()).toBe('from upstream')
    expect(res.status).toBe(200)
    expect(lines).toHaveLength(1)
    expect(calls.filter((s, i) => s !== calls[i - 1])).toEqual([...STAGES])
    expect(calls).toHaveLength(2 + 3 + 1 + 2 + 1)
  })

  test('what the stages do shows the same order through program.fetch', async () => {
    const program = await build()
    const before = upstreamCalls
    const res = await program.fetch(new Request('http://gateway.test/x', { headers: { 'x-from': 'client' } }))
    expect(await res.text()).toBe('from upstream')
    // rewrite ran before the terminal, the route's own after the defaults'
    expect(res.headers.get('x-order-seen')).toBe('route')
    // response ran after the terminal: it replaced the upstream's header
    expect(res.headers.get('x-from')).toBe('defaults')
    expect(res.headers.get('x-route')).toBe('route')
    expect(res.headers.get('deprecation')).toBe('true')
    expect(upstreamCalls).toBe(before + 1)
    // access ran before the terminal: a refused caller never reaches the upstream
    const refused = await program.fetch('http://gateway.test/x', { ip: '10.9.9.9', tls: false })
    expect(refused.status).toBe(403)
    expect(upstreamCalls).toBe(before + 1)
    await program.dispose()
  })
})
