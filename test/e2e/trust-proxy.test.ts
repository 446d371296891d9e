// --trust-proxy: X-Forwarded-* from a trusted peer are honoured and the chain is appended.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem, REQUEST_ID, type Echo } from '../helpers/http.ts'

let up: Upstream
let gw: RunningGateway
let dir: string

beforeAll(async () => {
  up = startUpstream()
  dir = policyDir({
    'trust.policy': `
upstream api { target ${up.url} }
match GET /ip { set header X-Client-Ip = request.ip; proxy api }
match GET /only-doc { allow ip 203.0.113.0/24; respond 200 text "in {request.ip}" }
`,
  })
  gw = await startGateway(dir, ['--trust-proxy', '127.0.0.1/32'])
})
afterAll(async () => {
  await gw?.stop()
  up?.stop()
  removeDir(dir)
})

const echoVia = async (headers: Record<string, string>) => {
  const res = await gw.fetch('/ip', { headers })
  expect(res.status).toBe(200)
  return ((await res.json()) as Echo).headers
}

describe('from a trusted peer', () => {
  test('request.ip is the forwarded client and the chain is appended', async () => {
    const h = await echoVia({ 'x-forwarded-for': '203.0.113.9' })
    expect(h['x-client-ip']).toBe('203.0.113.9')
    expect(h['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1')
  })

  test('the client is the right-most address that is not a trusted proxy', async () => {
    const h = await echoVia({ 'x-forwarded-for': '198.51.100.1, 203.0.113.9, 127.0.0.1' })
    expect(h['x-client-ip']).toBe('203.0.113.9')
    expect(h['x-forwarded-for']).toBe('198.51.100.1, 203.0.113.9, 127.0.0.1, 127.0.0.1')
  })

  test('without X-Forwarded-For the peer is the client', async () => {
    const h = await echoVia({})
    expect(h['x-client-ip']).toBe('127.0.0.1')
    expect(h['x-forwarded-for']).toBe('127.0.0.1')
  })

  test('X-Forwarded-Proto, X-Forwarded-Host and a valid X-Request-Id are kept', async () => {
    const h = await echoVia({ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'api.example.com', 'x-request-id': 'edge-42.abc' })
    expect(h['x-forwarded-proto']).toBe('https')
    expect(h['x-forwarded-host']).toBe('api.example.com')
    expect(h['x-request-id']).toBe('edge-42.abc')
  })

  test('an X-Request-Id that is not a safe token is replaced', async () => {
    const h = await echoVia({ 'x-request-id': 'bad id with spaces' })
    expect(h['x-request-id']).toMatch(REQUEST_ID)
  })

  test('allow ip judges the forwarded client', async () => {
    const res = await gw.fetch('/only-doc', { headers: { 'x-forwarded-for': '203.0.113.77' } })
    expect([res.status, await res.text()]).toEqual([200, 'in 203.0.113.77'])
    await expectProblem(await gw.fetch('/only-doc', { headers: { 'x-forwarded-for': '198.51.100.1' } }), 403, 'forbidden')
    await expectProblem(await gw.fetch('/only-doc'), 403, 'forbidden')
  })

  test('identity headers are stripped even from a trusted peer', async () => {
    const h = await echoVia({ 'x-consumer': 'admin', 'x-forwarded-client-cert': 'Hash=00', x_consumer: 'admin' })
    for (const n of ['x-consumer', 'x-forwarded-client-cert', 'x_consumer']) expect(Object.keys(h)).not.toContain(n)
  })
})
