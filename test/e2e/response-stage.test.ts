// The response stage's header steps: they run on gateway errors too, after the headers the
// access stage asked for (so they can remove RateLimit or Deprecation), and may not touch
// Gateway-Error.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { policyDir, removeDir, runCli, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem } from '../helpers/http.ts'

let up: Upstream
let gw: RunningGateway
let dir: string

beforeAll(async () => {
  up = startUpstream(() => new Response('from upstream', { headers: { server: 'upstream/1.0', 'x-upstream': 'yes' } }))
  dir = policyDir({
    'stage.policy': `
upstream api { target ${up.url} }

defaults {
  set response header X-Frame-Options = "DENY"
}

match GET /open { remove response header Server; proxy api }
match GET /closed { allow ip 10.0.0.0/8; remove response header Server; proxy api }
match GET /limited {
  throttle 1/min per ip
  remove response header RateLimit-Policy, RateLimit
  proxy api
}
match GET /old { status deprecated; remove response header Deprecation; set response header X-Old = "yes"; proxy api }
match GET /down { proxy http://127.0.0.1:9 }
`,
  })
  gw = await startGateway(dir)
})
afterAll(async () => {
  await gw?.stop()
  up?.stop()
  removeDir(dir)
})

describe('header steps', () => {
  test('run on an upstream answer', async () => {
    const res = await gw.fetch('/open')
    expect(await res.text()).toBe('from upstream')
    expect(res.headers.get('x-frame-options')).toBe('DENY')
    expect(res.headers.get('server')).toBeNull()
    expect(res.headers.get('x-upstream')).toBe('yes')
  })

  test('run on a gateway error from the access stage, which keeps its Gateway-Error', async () => {
    const res = await gw.fetch('/closed')
    expect(res.headers.get('x-frame-options')).toBe('DENY')
    await expectProblem(res, 403, 'forbidden')
  })

  test('run on a gateway error from the proxy', async () => {
    const res = await gw.fetch('/down')
    expect(res.headers.get('x-frame-options')).toBe('DENY')
    await expectProblem(res, 502, 'bad_gateway')
  })

  test('can remove the RateLimit fields the access stage added, on the admitted and the refused answer', async () => {
    const ok = await gw.fetch('/limited')
    expect(ok.status).toBe(200)
    expect(ok.headers.get('ratelimit-limit')).toBe('1')
    expect(ok.headers.get('ratelimit-policy')).toBeNull()
    expect(ok.headers.get('ratelimit')).toBeNull()
    const refused = await gw.fetch('/limited')
    expect(refused.headers.get('ratelimit-limit')).toBe('1')
    expect(refused.headers.get('ratelimit-policy')).toBeNull()
    expect(refused.headers.get('retry-after')).not.toBeNull()
    await expectProblem(refused, 429, 'rate_limited')
  })

  test('can remove Deprecation, which the access stage added', async () => {
    const res = await gw.fetch('/old')
    expect(res.status).toBe(200)
    expect(res.headers.get('deprecation')).toBeNull()
    expect(res.headers.get('x-old')).toBe('yes')
  })
})

describe('the checker', () => {
  test('refuses response directives that set or remove Gateway-Error', async () => {
    const bad = policyDir({
      'bad.policy': `
match GET /a { remove response header Gateway-Error; respond 200 text "a" }
match GET /b { set response header gateway-error = "none"; respond 200 text "b" }
`,
    })
    try {
      const r = await runCli(['check', bad])
      expect(r.code).toBe(1)
      expect(r.stderr).toContain('bad.policy:2:39: error: Gateway-Error belongs to the gateway')
      expect(r.stderr).toContain('bad.policy:3:36: error: Gateway-Error belongs to the gateway')
    } finally {
      removeDir(bad)
    }
  })
})
