import { afterAll, beforeAll, expect, test } from 'bun:test'
import { policyDir, rawRequest, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'

let up: Upstream
let gw: RunningGateway
let dir: string

beforeAll(async () => {
  up = startUpstream()
  dir = policyDir({
    'main.policy': `
upstream api { target ${up.url} }
match GET /api/{id} { rewrite path /items/{id}; proxy api }
match GET /healthz { respond 200 json "{\\"ok\\":true}" }
`,
  })
  gw = await startGateway(dir)
})
afterAll(async () => {
  await gw?.stop()
  up?.stop()
  removeDir(dir)
})

test('a routed request reaches the upstream with the rewritten path', async () => {
  const res = await gw.fetch('/api/7?q=1')
  expect(res.status).toBe(200)
  const body = (await res.json()) as { path: string; query: string }
  expect(body.path).toBe('/items/7')
  expect(body.query).toBe('q=1')
})

test('respond answers from the gateway', async () => {
  const res = await gw.fetch('/healthz')
  expect(await res.json()).toEqual({ ok: true })
})

test('two Host lines are a 400 gateway error', async () => {
  const text = await rawRequest(gw.url, 'GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n')
  expect(text).toStartWith('HTTP/1.1 400')
  expect(text.toLowerCase()).toContain('gateway-error: bad_request')
})
