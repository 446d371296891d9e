// `require key`, `allow app`, `allow group`, an app's own `allow ip`, key rotation windows and
// the identity headers the upstream gets, through the real gateway.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { policyDir, removeDir, startGateway, startRecordingUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem, type Echo } from '../helpers/http.ts'

const KEYS = { KEY_A: 'ka-0123456789abcdef', KEY_B: 'kb-0123456789abcdef', KEY_B_NEXT: 'kb-next-0123456789', KEY_C: 'kc-0123456789abcdef' }

let upstream: Upstream
let gw: RunningGateway
let dir: string
const hits: Echo[] = []

beforeAll(async () => {
  upstream = startRecordingUpstream(hits)
  dir = policyDir({
    'apps.policy': `
app partner_a {
  key "ak_partner_a"
  api-key env KEY_A
  group partners
  meta partner_code "PA-001"
}
app partner_b {
  key "ak_partner_b"
  api-key env KEY_B until 2099-01-01
  api-key env KEY_B_NEXT from 2098-06-01
  group others
}
app partner_c {
  api-key env KEY_C
  group partners
  allow ip 10.1.0.0/16
}
`,
    'routes.policy': `
upstream echo { target ${upstream.url} }

match GET /keyed/{id} {
  require key
  set header X-Partner-Code = app.meta.partner_code
  proxy echo
}
match GET /query {
  require key query api_key
  proxy echo
}
match GET /only-a {
  require key
  allow app partner_a
  proxy echo
}
match GET /partners {
  require key header X-Partner-Key
  allow group partners
  proxy echo
}
`,
  })
  gw = await startGateway(dir, [], KEYS)
})

afterAll(async () => {
  await gw?.stop()
  upstream?.stop()
  removeDir(dir)
})

const seen = async (f: () => Promise<Response>) => {
  const before = hits.length
  const res = await f()
  return { res, reached: hits.length > before, echo: hits[hits.length - 1] }
}

describe('require key', () => {
  test('the right key identifies the app; the upstream gets X-Consumer, not the key', async () => {
    const { res, reached, echo } = await seen(() =>
      gw.fetch('/keyed/7', { headers: { 'x-api-key': KEYS.KEY_A, 'x-consumer': 'admin', x_consumer: 'admin', 'x-consumer-id': 'forged' } }),
    )
    expect(res.status).toBe(200)
    expect(reached).toBe(true)
    expect(echo!.headers['x-consumer']).toBe('partner_a')
    expect(echo!.headers['x-partner-code']).toBe('PA-001')
    expect(echo!.headers['x-api-key']).toBeUndefined()
    expect(echo!.headers['x-consumer-id']).toBeUndefined()
    expect(Object.keys(echo!.headers).filter((h) => h.replace(/[_.]/g, '-') === 'x-consumer')).toEqual(['x-consumer'])
    await gw.waitFor('stdout', /"path":"\/keyed\/7"/)
    const line = gw.accessLog().find((l) => l.path === '/keyed/7')
    expect(line?.app).toBe('partner_a')
    expect(JSON.stringify(gw.accessLog())).not.toContain(KEYS.KEY_A)
  })

  test('no key: 401 with a challenge, upstream not reached', async () => {
    const { res, reached } = await seen(() => gw.fetch('/keyed/1'))
    await expectProblem(res, 401, 'unauthenticated')
    expect(res.headers.get('www-authenticate')).toBe('ApiKey')
    expect(reached).toBe(false)
  })

  test('a wrong key, an empty key, and the public key id are all refused', async () => {
    for (const key of ['nope', KEYS.KEY_A.slice(0, -1), 'ak_partner_a', '']) {
      const { res, reached } = await seen(() => gw.fetch('/keyed/1', { headers: { 'x-api-key': key } }))
      const problem = await expectProblem(res, 401, 'unauthenticated')
      expect(problem.detail).not.toContain(KEYS.KEY_A)
      expect(reached).toBe(false)
    }
  })

  test('from the query: the parameter is removed before proxying, other bytes kept', async () => {
    const { res, echo } = await seen(() => gw.fetch(`/query?a=1&api_key=${KEYS.KEY_A}&b=%7E`))
    expect(res.status).toBe(200)
    expect(echo!.query).toBe('a=1&b=%7E')
    expect(echo!.headers['x-consumer']).toBe('partner_a')
    await gw.waitFor('stdout', /"path":"\/query"/)
    const line = gw.accessLog().find((l) => l.path === '/query')
    expect(String(line?.query)).not.toContain(KEYS.KEY_A)
  })

  test('rotation: a key is accepted only inside its window', async () => {
    // KEY_B until 2099 is valid now; KEY_B_NEXT from 2098-06-01 not yet.
    expect((await gw.fetch('/keyed/1', { headers: { 'x-api-key': KEYS.KEY_B } })).status).toBe(200)
    const { res, reached } = await seen(() => gw.fetch('/keyed/1', { headers: { 'x-api-key': KEYS.KEY_B_NEXT } }))
    await expectProblem(res, 401, 'unauthenticated')
    expect(reached).toBe(false)
  })

  test("the app's own allow ip: a known key from elsewhere is 403", async () => {
    const { res, reached } = await seen(() => gw.fetch('/keyed/1', { headers: { 'x-api-key': KEYS.KEY_C } }))
    await expectProblem(res, 403, 'forbidden')
    expect(reached).toBe(false)
  })
})

describe('allow app and allow group', () => {
  test('allow app admits the named app only', async () => {
    expect((await gw.fetch('/only-a', { headers: { 'x-api-key': KEYS.KEY_A } })).status).toBe(200)
    const { res, reached } = await seen(() => gw.fetch('/only-a', { headers: { 'x-api-key': KEYS.KEY_B } }))
    await expectProblem(res, 403, 'forbidden')
    expect(reached).toBe(false)
  })

  test('allow group admits apps of the group only; a custom key header is dropped upstream', async () => {
    const { res, echo } = await seen(() => gw.fetch('/partners', { headers: { 'x-partner-key': KEYS.KEY_A } }))
    expect(res.status).toBe(200)
    expect(echo!.headers['x-partner-key']).toBeUndefined()
    const refused = await seen(() => gw.fetch('/partners', { headers: { 'x-partner-key': KEYS.KEY_B } }))
    await expectProblem(refused.res, 403, 'forbidden')
    expect(refused.reached).toBe(false)
    // The default header is not read on this route.
    await expectProblem(await gw.fetch('/partners', { headers: { 'x-api-key': KEYS.KEY_A } }), 401, 'unauthenticated')
  })

  test('auth failures are counted by code in /metrics', async () => {
    const text = await (await gw.admin('/metrics')).text()
    expect(text).toMatch(/gateway_auth_failures_total\{[^}]*code="unauthenticated"[^}]*\} [1-9]/)
    expect(text).toMatch(/gateway_auth_failures_total\{[^}]*code="forbidden"[^}]*\} [1-9]/)
  })
})
