// Upstream retries, least-conn balancing and active health checks, against real upstreams.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { closedPort as refusing, policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'

const ups: Upstream[] = []
let gw: RunningGateway
let dir: string
let closedPort: number
const hits: Record<string, number> = {}
let healthy = true // the `sick` upstream's /healthz answer
const slowRelease: (() => void)[] = []

function named(name: string, handler?: (req: Request) => Response | Promise<Response>): Upstream {
  const up = startUpstream(async (req) => {
    const path = new URL(req.url).pathname
    if (path === '/healthz') return new Response(name === 'sick' && !healthy ? 'down' : 'ok', { status: name === 'sick' && !healthy ? 503 : 200 })
    hits[`${name} ${path}`] = (hits[`${name} ${path}`] ?? 0) + 1
    if (handler) return handler(req)
    return new Response(`${name} ${req.method} ${await req.text()}`)
  })
  ups.push(up)
  return up
}

beforeAll(async () => {
  closedPort = refusing()
  const good = named('good')
  const flaky = named('flaky', () => new Response('busy', { status: 503 }))
  const slow = named('slow', async (req) => {
    if (new URL(req.url).pathname === '/hold') await new Promise<void>((r) => slowRelease.push(r))
    return new Response('slow')
  })
  const fast = named('fast')
  const sick = named('sick')
  const spare = named('spare')
  dir = policyDir({
    'main.policy': `
upstream retried {
  target http://127.0.0.1:${closedPort}
  target ${good.url}
  retry 1 on connect-error
}
upstream on-status {
  target ${flaky.url}
  target ${good.url}
  retry 1 on 503
}
upstream unsafe-off {
  target ${flaky.url}
  target ${good.url}
  retry 1 on 503
}
upstream unsafe-on {
  target ${flaky.url}
  target ${good.url}
  retry 1 on 503
  retry-unsafe
}
upstream no-retry {
  target ${flaky.url}
  target ${good.url}
}
upstream least {
  target ${slow.url}
  target ${fast.url}
  balance least-conn
}
upstream checked {
  target ${sick.url}
  target ${spare.url}
  health GET /healthz every 100ms timeout 50ms fails 1 passes 1
}
upstream all-down {
  target http://127.0.0.1:${closedPort}
  health GET /healthz every 100ms fails 1
}
match * /retried/{p} { rewrite path /{p}; proxy retried }
match * /on-status/{p} { rewrite path /{p}; proxy on-status }
match POST /unsafe-off/{p} { rewrite path /{p}; proxy unsafe-off }
match POST /unsafe-on/{p} { rewrite path /{p}; proxy unsafe-on }
match GET /no-retry/{p} { rewrite path /{p}; proxy no-retry }
match GET /least/{p} { rewrite path /{p}; proxy least }
match GET /checked/{p} { rewrite path /{p}; proxy checked }
match GET /all-down { proxy all-down }
`,
  })
  gw = await startGateway(dir)
})
afterAll(async () => {
  slowRelease.forEach((r) => r())
  await gw?.stop()
  ups.forEach((u) => u.stop())
  removeDir(dir)
})

describe('retry', () => {
  test('a refused connection is retried on the next target; every answer is 200', async () => {
    const texts = await Promise.all(
      Array.from({ length: 6 }, (_, i) => gw.fetch(`/retried/r${i}`).then(async (r) => `${r.status} ${await r.text()}`)),
    )
    expect(texts).toEqual(Array(6).fill('200 good GET '))
  })

  test('a retried PUT carries its body again', async () => {
    const texts = await Promise.all(
      Array.from({ length: 4 }, () => gw.fetch('/retried/put', { method: 'PUT', body: 'payload-123' }).then((r) => r.text())),
    )
    expect(texts).toEqual(Array(4).fill('good PUT payload-123'))
  })

  test('a listed status is retried; without retry the 503 passes through', async () => {
    const retried = await Promise.all(Array.from({ length: 4 }, () => gw.fetch('/on-status/s').then((r) => r.status)))
    expect(retried).toEqual([200, 200, 200, 200])
    const plain = await Promise.all(Array.from({ length: 4 }, () => gw.fetch('/no-retry/s').then((r) => r.status)))
    expect(plain.sort()).toEqual([200, 200, 503, 503])
  })

  test('POST is not retried unless the upstream says retry-unsafe', async () => {
    const off = await Promise.all(Array.from({ length: 4 }, () => gw.fetch('/unsafe-off/p', { method: 'POST', body: 'x' }).then((r) => r.status)))
    expect(off.sort()).toEqual([200, 200, 503, 503])
    const on = await Promise.all(Array.from({ length: 4 }, () => gw.fetch('/unsafe-on/p', { method: 'POST', body: 'order-1' }).then((r) => r.text())))
    expect(on).toEqual(Array(4).fill('good POST order-1'))
  })
})

test('least-conn sends new requests away from a target that is busy', async () => {
  // Park two requests on whichever targets they land; then the busy one is avoided.
  const held = [gw.fetch('/least/hold'), gw.fetch('/least/hold')]
  const deadline = Date.now() + 2_000
  while (slowRelease.length === 0 && Date.now() < deadline) await Bun.sleep(10)
  expect(slowRelease.length).toBeGreaterThan(0)
  const texts = []
  for (let i = 0; i < 6; i++) texts.push(await (await gw.fetch('/least/q')).text())
  expect(texts).toEqual(Array(6).fill('fast GET '))
  slowRelease.splice(0).forEach((r) => r())
  await Promise.all(held)
})

describe('health checks', () => {
  test('a target failing its check leaves the rotation and comes back when it passes', async () => {
    healthy = false
    // Out of the rotation once the gateway says so (its next check), not after a guessed wait.
    await gw.waitFor('stderr', /upstream checked: http:\/\/127\.0\.0\.1:\d+ failed 1 health checks; out of the rotation/)
    const during = await Promise.all(Array.from({ length: 6 }, () => gw.fetch('/checked/x').then((r) => r.text())))
    expect(during).toEqual(Array(6).fill('spare GET '))
    healthy = true
    await gw.waitFor('stderr', /upstream checked: http:\/\/127\.0\.0\.1:\d+ is healthy again/)
    const after = await Promise.all(Array.from({ length: 6 }, () => gw.fetch('/checked/x').then((r) => r.text())))
    expect(new Set(after)).toEqual(new Set(['sick GET ', 'spare GET ']))
  })

  test('with every target down the gateway still tries them (panic mode): the answer is the try, not a 503', async () => {
    await gw.waitFor('stderr', /upstream all-down: .* failed 1 health checks/)
    const res = await gw.fetch('/all-down')
    expect(res.status).toBe(502)
    expect(res.headers.get('gateway-error')).toBe('bad_gateway')
  })
})
