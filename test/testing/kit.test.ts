// portcullis/testing as a user's `bun test` file uses it: policies in a directory, mock
// upstreams, the kit's clock, callers, traces, load errors, and Redis.
import { afterAll, describe, expect, test } from 'bun:test'
import { generateKeyPairSync } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { buildProgram, renderDiagnostics } from '../../src/index.ts'
import { loadGateway, type Gateway } from '../../src/testing/index.ts'
import { policyDir, removeDir } from '../helpers/gateway.ts'

const CERT_A = '5d3f0b8e516a2c9714e0c37ba9426d18f1038cb52764da0e937f4c21b8e605aa'
const issuerKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string

const POLICY = `upstream orders {
  target http://orders.internal:9001/base
}
upstream users {
  target http://users.internal:9002
}
upstream audit {
  target http://audit.internal:9003
}

app partner_a {
  key "ak_partner_a"
  secret env PARTNER_A_SECRET
  api-key file "secrets/partner_a.key"
  cert sha256 "${CERT_A}"
  jwt-subject "partner-a-client"
}

app partner_b {
  key "ak_partner_b"
  api-key env PARTNER_B_OLD until 2030-01-01
  api-key env PARTNER_B_NEW from 2029-12-01
}

session {
  verify via users /verify
  ttl 15m
  refresh 1d
}

match GET /orders/{id:int} {
  require hmac
  rewrite path /orders/{param.id}
  proxy orders
}
match POST /orders {
  require hmac
  proxy orders
}
match GET /limited {
  throttle 20/min per ip
  proxy orders
}
match GET /daily {
  quota 3/day per ip
  proxy orders
}
match GET /keyed {
  require key
  proxy users
}
match GET /keyed-query {
  require key query api_key
  proxy users
}
match GET /cert {
  require mtls
  proxy users
}
match GET /me {
  require jwt issuer "https://issuer.test" audience "kit" key env JWT_PUBLIC_KEY
  set header X-User = jwt.sub
  proxy users
}
match GET /any {
  require hmac or key
  proxy users
}
match POST /auth/login { login }
match GET /profile {
  require session
  proxy users
}
match GET /audit {
  proxy audit
}
match GET /cached {
  cache response 30s
  proxy orders
}
`

const ENV = {
  PARTNER_A_SECRET: 'partner-a-shared-secret-0123456789abcdef',
  PARTNER_B_OLD: 'pb-old-key-0123456789',
  PARTNER_B_NEW: 'pb-new-key-0123456789',
  JWT_PUBLIC_KEY: issuerKey,
}
const FILES = { 'secrets/partner_a.key': 'pa-api-key-0123456789\n' }

const dir = policyDir({ 'kit.policy': POLICY })
const open: Gateway[] = []
afterAll(async () => {
  for (const g of open) await g.close()
  removeDir(dir)
})

async function kit(opts: Parameters<typeof loadGateway>[1] = {}): Promise<Gateway> {
  const g = await loadGateway(dir, { env: ENV, files: FILES, now: '2029-06-01T12:00:00Z', ...opts })
  open.push(g)
  return g
}

const lineOf = (text: string) => POLICY.split('\n').findIndex((l) => l.includes(text)) + 1

describe('mock upstreams', () => {
  test('a recorder answers 200 {} and keeps each request, with the base path of the upstream', async () => {
    const gw = await kit({ upstreams: { orders: 'record' } })
    const r = await gw.request('GET /orders/7', { as: 'partner_a', headers: { 'x-trace-me': 'yes' }, query: { full: 1 } })
    expect(r.status, r.explain()).toBe(200)
    expect(await r.json()).toEqual({})
    const seen = gw.upstream('orders').requests
    expect(seen).toHaveLength(1)
    expect(seen[0]!.method).toBe('GET')
    expect(seen[0]!.path).toBe('/base/orders/7?full=1')
    expect(seen[0]!.headers['x-trace-me']).toBe('yes')
  })

  test('a handler answers, and sees the body the client sent', async () => {
    const gw = await kit({
      upstreams: { orders: async (req) => Response.json({ created: true, got: await req.json() }, { status: 201 }) },
    })
    const r = await gw.request('POST /orders', { as: 'partner_a', body: { item: 'book', qty: 2 } })
    expect(r.status, r.explain()).toBe(201)
    expect(await r.json()).toEqual({ created: true, got: { item: 'book', qty: 2 } })
    expect(gw.upstream('orders').last!.body).toBe('{"item":"book","qty":2}')
    expect(gw.upstream('orders').last!.headers['content-type']).toBe('application/json')
  })

  test('an upstream the test does not mock answers 502 {} and still records', async () => {
    const gw = await kit()
    const r = await gw.request('GET /audit')
    expect(r.status).toBe(502)
    expect(await r.json()).toEqual({})
    expect(gw.upstream('audit').requests.map((x) => x.path)).toEqual(['/audit'])
  })

  test('a mock for an upstream the policies do not declare is refused by name', async () => {
    await expect(loadGateway(dir, { env: ENV, files: FILES, upstreams: { ordres: 'record' } })).rejects.toThrow(
      "upstreams: the policies declare no upstream 'ordres' (declared: orders, users, audit)",
    )
  })
})

describe('env and files', () => {
  test('the secret file comes from the test; without it the load fails at the policy line', async () => {
    const gw = await kit({ upstreams: { users: 'record' } })
    expect((await gw.request('GET /keyed', { apiKey: 'pa-api-key-0123456789' })).status).toBe(200)
    const err = await loadGateway(dir, { env: ENV }).then(
      () => null,
      (e: Error) => e,
    )
    expect(err?.message).toContain(`kit.policy:${lineOf('api-key file')}:`)
    expect(err?.message).toContain('secrets/partner_a.key')
  })

  test('env replaces process.env: a variable the test leaves out is a load error at its line', async () => {
    const { PARTNER_A_SECRET: _, ...rest } = ENV
    const err = await loadGateway(dir, { env: rest, files: FILES }).then(
      () => null,
      (e: Error) => e,
    )
    expect(err?.message).toContain(`kit.policy:${lineOf('secret env PARTNER_A_SECRET')}:`)
    expect(err?.message).toContain('environment variable PARTNER_A_SECRET is not set')
  })

  test('files keep diagnostics pointing at the real policy file, not the kit copy', async () => {
    const broken = policyDir({ 'kit.policy': POLICY.replace('proxy audit', 'proxy audti') })
    try {
      const err = await loadGateway(broken, { env: ENV, files: FILES }).then(
        () => null,
        (e: Error) => e,
      )
      expect(err?.message).toContain(join(broken, 'kit.policy'))
      expect(err?.message).not.toContain('portcullis-kit-')
    } finally {
      removeDir(broken)
    }
  })
})

describe('the clock', () => {
  test('a 20/min throttle: 20 pass, the 21st is 429, a minute later it passes — well under a second', async () => {
    const gw = await kit({ upstreams: { orders: 'record' } })
    const started = performance.now()
    for (let i = 0; i < 20; i++) expect((await gw.request('GET /limited')).status).toBe(200)
    const refused = await gw.request('GET /limited')
    expect(refused.status).toBe(429)
    expect(refused.headers.get('retry-after')).toBe('60')
    gw.clock.advance('59s')
    expect((await gw.request('GET /limited')).status).toBe(429)
    gw.clock.advance('1s')
    expect((await gw.request('GET /limited')).status).toBe(200)
    expect(performance.now() - started).toBeLessThan(1000)
  })

  test('a daily quota resets at midnight UTC, by the clock', async () => {
    const gw = await kit({ upstreams: { orders: 'record' }, now: '2029-06-01T23:58:00Z' })
    for (let i = 0; i < 3; i++) expect((await gw.request('GET /daily')).status).toBe(200)
    const over = await gw.request('GET /daily')
    expect(over.status).toBe(429)
    expect(over.headers.get('gateway-error')).toBe('quota_exceeded')
    expect(over.headers.get('retry-after')).toBe('120')
    gw.clock.set('2029-06-02T00:00:00Z')
    expect((await gw.request('GET /daily')).status).toBe(200)
  })

  test('a signature is too old once the window passes; a replay is refused', async () => {
    const gw = await kit({ upstreams: { orders: 'record' } })
    const signed = await gw.prepare('GET /orders/1', { as: 'partner_a' })
    expect((await gw.send(signed)).status).toBe(200)
    const replay = await gw.send(signed)
    expect(replay.status).toBe(401)
    expect(replay.explain()).toContain('the signature nonce was used before')
    const later = await gw.prepare('GET /orders/2', { as: 'partner_a' })
    gw.clock.advance('5m')
    gw.clock.advance('1s')
    const old = await gw.send(later)
    expect(old.status).toBe(401)
    expect(old.explain()).toContain('the signature is too old')
    expect((await gw.request('GET /orders/2', { as: 'partner_a' })).status).toBe(200)
  })

  test('a JWT expires on the clock; issuer and audience are still checked', async () => {
    const gw = await kit({ upstreams: { users: 'record' } })
    const exp = Math.floor(gw.clock.now() / 1000) + 60
    const ok = await gw.request('GET /me', { jwt: { claims: { sub: 'user-1', exp } } })
    expect(ok.status, ok.explain()).toBe(200)
    expect(gw.upstream('users').last!.headers['x-user']).toBe('user-1')
    gw.clock.advance('2m')
    const expired = await gw.request('GET /me', { jwt: { claims: { sub: 'user-1', exp } } })
    expect(expired.status).toBe(401)
    expect(expired.explain()).toContain('the token has expired')
    const wrongAud = await gw.request('GET /me', { jwt: { claims: { sub: 'user-1', aud: 'someone-else' } } })
    expect(wrongAud.status).toBe(401)
    expect(wrongAud.explain()).toContain("the token's audience is not accepted")
  })

  test('a session ends after its ttl', async () => {
    const gw = await kit({
      upstreams: {
        users: async (req) => {
          if (new URL(req.url).pathname !== '/verify') return Response.json({ profile: true })
          const c = (await req.json()) as { user: string; password: string }
          return c.password === 'lovelace' ? Response.json({ id: c.user }) : new Response('no', { status: 401 })
        },
      },
    })
    await expect(gw.login({ user: 'ada', password: 'wrong' })).rejects.toThrow('the login was refused: 401')
    const { accessToken } = await gw.login({ user: 'ada', password: 'lovelace' })
    expect((await gw.request('GET /profile', { session: accessToken })).status).toBe(200)
    gw.clock.advance('14m')
    expect((await gw.request('GET /profile', { session: accessToken })).status).toBe(200)
    gw.clock.advance('1m')
    const ended = await gw.request('GET /profile', { session: accessToken })
    expect(ended.status).toBe(401)
  })

  test('API key rotation windows follow the clock', async () => {
    const gw = await kit({ upstreams: { users: 'record' } })
    expect((await gw.request('GET /keyed', { apiKey: ENV.PARTNER_B_OLD })).status).toBe(200)
    expect((await gw.request('GET /keyed', { apiKey: ENV.PARTNER_B_NEW })).status).toBe(401)
    gw.clock.set('2030-02-01T00:00:00Z')
    expect((await gw.request('GET /keyed', { apiKey: ENV.PARTNER_B_OLD })).status).toBe(401)
    expect((await gw.request('GET /keyed', { apiKey: ENV.PARTNER_B_NEW })).status).toBe(200)
    // `apiKey: APP` picks the app's key valid now.
    expect((await gw.request('GET /keyed', { apiKey: 'partner_b' })).status).toBe(200)
  })

  test('a cached answer is served until its ttl passes on the clock', async () => {
    const gw = await kit({ upstreams: { orders: 'record' } })
    expect((await gw.request('GET /cached')).headers.get('cache-status')).toContain('stored')
    gw.clock.advance('29s')
    const hit = await gw.request('GET /cached')
    expect(hit.headers.get('cache-status')).toContain('hit; ttl=1')
    expect(hit.headers.get('age')).toBe('29')
    gw.clock.advance('1s')
    await gw.request('GET /cached')
    expect(gw.upstream('orders').requests).toHaveLength(2)
  })

  test('each kit has its own memory store', async () => {
    const a = await kit({ upstreams: { orders: 'record' } })
    const b = await kit({ upstreams: { orders: 'record' } })
    for (let i = 0; i < 3; i++) await a.request('GET /daily')
    expect((await a.request('GET /daily')).status).toBe(429)
    expect((await b.request('GET /daily')).status).toBe(200)
  })
})

describe('callers', () => {
  test('as: APP presents what each route requires: a signature, an API key (header or query), a certificate, a JWT', async () => {
    const gw = await kit({ upstreams: { orders: 'record', users: 'record' } })
    for (const path of ['/orders/3', '/keyed', '/keyed-query', '/cert', '/me', '/any']) {
      const r = await gw.request(`GET ${path}`, { as: 'partner_a' })
      expect(r.status, r.explain()).toBe(200)
      expect(r.explain()).toContain('caller: app partner_a')
    }
    // The query key is the caller's secret: removed before the upstream.
    expect(gw.upstream('users').requests.find((x) => x.path.startsWith('/keyed-query'))!.path).toBe('/keyed-query')
  })

  test('as: APP without the credential a route needs says which one', async () => {
    const gw = await kit()
    await expect(gw.request('GET /cert', { as: 'partner_b' })).rejects.toThrow(
      `app 'partner_b' cannot call GET /cert (${join(dir, 'kit.policy')}:${lineOf('match GET /cert')}:11): it needs mtls credentials`,
    )
    await expect(gw.request('GET /keyed', { as: 'nobody' })).rejects.toThrow("no app 'nobody' in the policies (apps: partner_a, partner_b)")
  })

  test('cert: APP presents its fingerprint; another certificate is refused', async () => {
    const gw = await kit({ upstreams: { users: 'record' } })
    expect((await gw.request('GET /cert', { cert: 'partner_a' })).status).toBe(200)
    expect((await gw.request('GET /cert', { cert: 'ab'.repeat(32) })).status).toBe(401)
    expect((await gw.request('GET /cert')).status).toBe(401)
  })

  test('apiKey: a literal key, or an app name', async () => {
    const gw = await kit({ upstreams: { users: 'record' } })
    expect((await gw.request('GET /keyed', { apiKey: 'partner_a' })).status).toBe(200)
    expect((await gw.request('GET /keyed-query', { apiKey: 'partner_a' })).status).toBe(200)
    const wrong = await gw.request('GET /keyed', { apiKey: 'not-a-key' })
    expect(wrong.status).toBe(401)
    expect(wrong.headers.get('gateway-error')).toBe('unauthenticated')
  })

  test('jwt: claims mints a token the route accepts, with the app from its subject', async () => {
    const gw = await kit({ upstreams: { users: 'record' } })
    const r = await gw.request('GET /me', { jwt: { claims: { sub: 'partner-a-client' } } })
    expect(r.status).toBe(200)
    expect(r.explain()).toContain('caller: app partner_a')
  })
})

describe('traces', () => {
  test('the route matched with file:line and each directive with what it decided', async () => {
    const gw = await kit({ upstreams: { orders: 'record' } })
    const ok = await gw.request('GET /orders/9', { as: 'partner_a' })
    expect(ok.trace.route?.location).toBe(`${join(dir, 'kit.policy')}:${lineOf('match GET /orders/{id:int}')}:11`)
    expect(ok.trace.steps.map((s) => [s.stage, s.directive, s.outcome])).toEqual([
      ['access', 'require hmac', 'passed'],
      ['rewrite', 'rewrite path', 'passed'],
      ['proxy', 'proxy orders', 'answered'],
    ])
    const refused = await gw.request('GET /orders/9')
    expect(refused.status).toBe(401)
    const step = refused.trace.steps[0]!
    expect([step.directive, step.outcome, step.gatewayError, step.at]).toEqual([
      'require hmac',
      'refused',
      'unauthenticated',
      `${join(dir, 'kit.policy')}:${lineOf('  require hmac')}`,
    ])
    expect(refused.explain()).toContain('✗ refused')
  })
})

describe('load errors', () => {
  test('a typo rejects with exactly the diagnostics gateway check prints', async () => {
    const broken = policyDir({ 'kit.policy': 'upstream a {\n  target http://127.0.0.1:1\n}\nmatch GTE /x {\n  proxy a\n}\n' })
    try {
      const err = await loadGateway(broken).then(
        () => null,
        (e: Error) => e,
      )
      const built = await buildProgram(broken)
      expect(built.diagnostics).toBeDefined()
      expect(err?.message).toBe(renderDiagnostics(built.diagnostics!).trimEnd())
      expect(err?.message).toContain(`${join(broken, 'kit.policy')}:4:7`)
    } finally {
      removeDir(broken)
    }
  })
})

describe('Redis store', () => {
  const prefix = `kit-test:${process.pid}:${Date.now()}:`
  const redisDir = policyDir({
    'r.policy': 'upstream a {\n  target http://a.internal\n}\nmatch GET /r {\n  throttle 2/min per ip\n  proxy a\n}\n',
  })
  afterAll(() => removeDir(redisDir))

  test('kits on one Redis prefix share their counts; another prefix does not', async () => {
    const store = { redis: 'redis://127.0.0.1:6379', prefix }
    const a = await loadGateway(redisDir, { store, upstreams: { a: 'record' } })
    open.push(a)
    expect(a.store.kind).toBe('redis')
    expect((await a.request('GET /r')).status).toBe(200)
    expect((await a.request('GET /r')).status).toBe(200)
    expect((await a.request('GET /r')).status).toBe(429)
    const b = await loadGateway(redisDir, { store, upstreams: { a: 'record' } })
    open.push(b)
    expect((await b.request('GET /r')).status).toBe(429)
    const c = await loadGateway(redisDir, { store: { redis: 'redis://127.0.0.1:6379', prefix: `${prefix}other:` }, upstreams: { a: 'record' } })
    open.push(c)
    expect((await c.request('GET /r')).status).toBe(200)
  })

  test('a Redis that does not answer is a load error that says so', async () => {
    const err = await loadGateway(redisDir, { store: { redis: 'redis://127.0.0.1:1' } }).then(
      () => null,
      (e: Error) => e,
    )
    expect(err?.message).toStartWith("the kit's Redis store at redis://127.0.0.1:1 does not answer")
  })
})

test('the files map cannot reach outside the kit copy', async () => {
  await expect(loadGateway(dir, { env: ENV, files: { ...FILES, '../../../etc/x': 'no' } })).rejects.toThrow(
    "files: '../../../etc/x' is too far outside",
  )
  // The user's directory is never written to.
  const gw = await kit()
  await gw.close()
  expect(existsSync(join(dir, 'secrets'))).toBe(false)
})

describe('as a client on the wire sees it', () => {
  const wireDir = policyDir({
    'w.policy': `upstream a {
  target http://a.internal
}
match GET /s/{rest*} {
  strip prefix /s
  proxy http://127.0.0.1:1/base
}
match POST /small {
  limit body 10b
  proxy a
}
match GET,HEAD /h {
  respond 200 text "hello"
}
`,
  })
  afterAll(() => removeDir(wireDir))
  const wire = async (opts: Parameters<typeof loadGateway>[1] = {}) => {
    const g = await loadGateway(wireDir, opts)
    open.push(g)
    return g
  }

  test('a `proxy URL` target is mocked when the test names its origin, else left as written', async () => {
    const gw = await wire({ upstreams: { 'http://127.0.0.1:1': 'record', a: 'record' } })
    const r = await gw.request('GET /s/css/site.css?v=2')
    expect(r.status, r.explain()).toBe(200)
    expect(gw.upstream('http://127.0.0.1:1').last!.path).toBe('/base/css/site.css?v=2')
    // Not named: the real address (nothing listens on port 1).
    const real = await wire()
    const refused = await real.request('GET /s/x')
    expect(refused.status, refused.explain()).toBe(502)
    expect(() => real.upstream('http://127.0.0.1:1')).toThrow("no upstream 'http://127.0.0.1:1'")
  })

  test('a body is sent with its Content-Length, so `limit body` refuses it up front', async () => {
    const gw = await wire({ upstreams: { a: 'record' } })
    const ok = await gw.request('POST /small', { body: '0123456789' })
    expect(ok.status, ok.explain()).toBe(200)
    expect(gw.upstream('a').last!.headers['content-length']).toBe('10')
    const big = await gw.request('POST /small', { body: '0123456789A' })
    expect(big.status).toBe(413)
    expect(big.trace.steps.find((s) => s.outcome === 'refused')?.directive).toBe('limit body')
    expect(gw.upstream('a').requests).toHaveLength(1)
  })

  test('an answer to HEAD has no body, as on the wire', async () => {
    const gw = await wire()
    const head = await gw.request('HEAD /h')
    expect(head.status, head.explain()).toBe(200)
    expect(await head.text()).toBe('')
    expect(head.headers.get('content-type')).toStartWith('text/plain')
    expect(await (await gw.request('GET /h')).text()).toBe('hello')
  })
})
