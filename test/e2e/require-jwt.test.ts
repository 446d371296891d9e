// `require jwt`, `require scope` and `require claim` through the real gateway, with a real JWK
// set server on 127.0.0.1 (RS256 and ES256 keys made with jose): valid tokens and the headers
// the upstream gets, every kind of bad token, a JWK set that does not answer, key rotation.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose'
import { policyDir, removeDir, startGateway, startRecordingUpstream, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem, type Echo } from '../helpers/http.ts'
import { until } from '../helpers/poll.ts'

const ISS = 'https://issuer.test'
const now = () => Math.floor(Date.now() / 1000)

const rsa = await generateKeyPair('RS256', { extractable: true })
const ec = await generateKeyPair('ES256', { extractable: true })
const stranger = await generateKeyPair('RS256')
const next = await generateKeyPair('RS256', { extractable: true })
const jwk = async (k: CryptoKey, kid: string, alg: string): Promise<JWK> => ({ ...(await exportJWK(k)), kid, alg, use: 'sig' })
const KEYS = [await jwk(rsa.publicKey, 'rsa-1', 'RS256'), await jwk(ec.publicKey, 'ec-1', 'ES256')]
const NEXT = await jwk(next.publicKey, 'rsa-2', 'RS256')

let upstream: Upstream
let idp: Upstream
let gw: RunningGateway
let dir: string
const hits: Echo[] = []
const fetches = { jwks: 0, rotating: 0 }
let rotating: JWK[] = [KEYS[0]!]

beforeAll(async () => {
  upstream = startRecordingUpstream(hits)
  idp = startUpstream((req) => {
    const path = new URL(req.url).pathname
    if (path === '/jwks') return (fetches.jwks++, Response.json({ keys: KEYS }))
    if (path === '/rotating') return (fetches.rotating++, Response.json({ keys: rotating }))
    // A key set server that accepts the connection and never answers.
    return new Promise<Response>(() => {})
  })
  const jwt = `require jwt issuer "${ISS}" audience "api" jwks ${idp.url}/jwks`
  dir = policyDir({
    'jwt.policy': `
app mobile {
  jwt-subject "mobile-client"
}
app walled {
  jwt-subject "walled-client"
  allow ip 10.0.0.0/8
}
upstream echo { target ${upstream.url} }

match GET /jwt {
  ${jwt}
  set header X-Sub = jwt.sub
  proxy echo
}
match GET /rs-only {
  ${jwt} algorithms RS256
  proxy echo
}
match GET /scoped {
  ${jwt}
  require scope orders:write
  require claim role = admin
  proxy echo
}
match GET /down {
  require jwt jwks ${idp.url}/hang
  proxy echo
}
match GET /refused {
  require jwt jwks http://127.0.0.1:1/jwks
  proxy echo
}
match GET /rotating {
  require jwt jwks ${idp.url}/rotating cooldown 1s
  proxy echo
}
`,
  })
  gw = await startGateway(dir)
})

afterAll(async () => {
  await gw?.stop()
  upstream?.stop()
  idp?.stop()
  removeDir(dir)
})

function token(claims: JWTPayload, opts: { key?: CryptoKey | Uint8Array; alg?: string; kid?: string } = {}): Promise<string> {
  const alg = opts.alg ?? 'RS256'
  return new SignJWT({ iss: ISS, aud: 'api', sub: 'user-1', iat: now(), exp: now() + 300, ...claims })
    .setProtectedHeader({ alg, kid: opts.kid ?? (alg === 'ES256' ? 'ec-1' : 'rsa-1') })
    .sign(opts.key ?? (alg === 'ES256' ? ec.privateKey : rsa.privateKey))
}

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')

async function call(path: string, bearer?: string, headers: Record<string, string> = {}) {
  const before = hits.length
  const res = await gw.fetch(path, { headers: { ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }), ...headers } })
  return { res, reached: hits.length > before, echo: hits[hits.length - 1] }
}

// First, before an unknown kid could make the gateway look again.
test('the JWK set is fetched when the gateway starts, once for the three routes that share it', async () => {
  await until(
    async () => fetches.jwks,
    (n) => n >= 1,
    5_000,
  )
  expect(fetches.jwks).toBe(1)
})

describe('valid tokens', () => {
  test('RS256: the app from azp, jwt.sub in a header; client-sent identity headers are dropped', async () => {
    const t = await token({ azp: 'mobile-client' })
    const { res, reached, echo } = await call('/jwt', t, { 'x-consumer': 'admin', x_consumer: 'admin', 'x-consumer-id': 'forged', 'x-sub': 'forged' })
    expect(res.status).toBe(200)
    expect(reached).toBe(true)
    expect(echo!.headers['x-consumer']).toBe('mobile')
    expect(echo!.headers['x-sub']).toBe('user-1')
    expect(echo!.headers['x-consumer-id']).toBeUndefined()
    expect(Object.keys(echo!.headers).filter((h) => h.replace(/[_.]/g, '-') === 'x-consumer')).toEqual(['x-consumer'])
    // The token goes on to the upstream, which may verify it again or pass it along.
    expect(echo!.headers.authorization).toBe(`Bearer ${t}`)
  })

  test('ES256, a lower-case scheme, no app: the upstream gets no X-Consumer, not even a forged one', async () => {
    const t = await token({ sub: 'user-2' }, { alg: 'ES256' })
    const res = await gw.fetch('/jwt', { headers: { authorization: `bearer ${t}`, 'x-consumer': 'admin' } })
    expect(res.status).toBe(200)
    const echo = (await res.json()) as Echo
    expect(echo.headers['x-consumer']).toBeUndefined()
    expect(echo.headers['x-sub']).toBe('user-2')
  })
})

describe('refused tokens', () => {
  test('no token: 401 with the Bearer challenge', async () => {
    for (const headers of [{}, { authorization: 'Basic dXNlcjpwYXNz' }] as Record<string, string>[]) {
      const before = hits.length
      const res = await gw.fetch('/jwt', { headers })
      await expectProblem(res, 401, 'unauthenticated')
      expect(res.headers.get('www-authenticate')).toBe('Bearer')
      expect(hits.length).toBe(before)
    }
  })

  const cases: [string, string, () => Promise<string>, string][] = [
    ['malformed', '/jwt', async () => 'not-a-jwt', 'the token is malformed'],
    ['expired', '/jwt', () => token({ exp: now() - 60 }), 'the token has expired'],
    ['not valid yet', '/jwt', () => token({ nbf: now() + 3600 }), 'the token is not valid yet'],
    ['wrong issuer', '/jwt', () => token({ iss: 'https://evil.test' }), "the token's issuer is not accepted"],
    ['wrong audience', '/jwt', () => token({ aud: 'other' }), "the token's audience is not accepted"],
    ['an algorithm the route does not list', '/rs-only', () => token({}, { alg: 'ES256' }), "the token's signing algorithm is not accepted"],
    [
      'alg none, no signature',
      '/jwt',
      async () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: ISS, aud: 'api', sub: 'x', exp: now() + 60 })}.`,
      'the token is malformed',
    ],
    [
      'alg none, any signature',
      '/jwt',
      async () => `${b64({ alg: 'none', kid: 'rsa-1' })}.${b64({ iss: ISS, aud: 'api', sub: 'x', exp: now() + 60 })}.c2ln`,
      "the token's signing algorithm is not accepted",
    ],
    ['an unknown kid', '/jwt', () => token({}, { key: stranger.privateKey, kid: 'rsa-9' }), 'no known key matches the token'],
    ['a known kid, another key', '/jwt', () => token({}, { key: stranger.privateKey }), "the token's signature is not valid"],
    [
      'a tampered payload',
      '/jwt',
      async () => {
        const [h, , s] = (await token({ sub: 'user-1' })).split('.')
        return `${h}.${b64({ iss: ISS, aud: 'api', sub: 'admin', exp: now() + 300 })}.${s}`
      },
      "the token's signature is not valid",
    ],
    [
      'HS256 signed with the RSA public key (key confusion)',
      '/jwt',
      async () => token({}, { alg: 'HS256', key: new TextEncoder().encode(await exportSPKI(rsa.publicKey)) }),
      "the token's signing algorithm is not accepted",
    ],
  ]

  test.each(cases)('%s: 401 invalid_token, the upstream not reached', async (_name, path, make, detail) => {
    const t = await make()
    const { res, reached } = await call(path, t)
    const problem = await expectProblem(res, 401, 'unauthenticated')
    expect(problem.detail).toBe(detail)
    expect(problem.detail).not.toContain(t)
    expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"')
    expect(reached).toBe(false)
  })

  test("an app's own allow ip applies to tokens that name it", async () => {
    const { res, reached } = await call('/jwt', await token({ azp: 'walled-client' }))
    await expectProblem(res, 403, 'forbidden')
    expect(reached).toBe(false)
  })
})

describe('require scope and require claim', () => {
  test('both present: through', async () => {
    const { res } = await call('/scoped', await token({ scope: 'orders:read orders:write', role: ['user', 'admin'] }))
    expect(res.status).toBe(200)
  })

  test('a missing scope: 403 with the insufficient_scope challenge', async () => {
    const { res, reached } = await call('/scoped', await token({ scope: 'orders:read', role: 'admin' }))
    await expectProblem(res, 403, 'forbidden')
    expect(res.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="orders:write"')
    expect(reached).toBe(false)
  })

  test('a claim without the value: 403', async () => {
    const { res, reached } = await call('/scoped', await token({ scp: ['orders:write'], role: 'user' }))
    await expectProblem(res, 403, 'forbidden')
    expect(reached).toBe(false)
  })
})

describe('the JWK set server', () => {
  test('one that never answers: 503 within about a second, not a hang; then at once', async () => {
    let t0 = Date.now()
    const { res, reached } = await call('/down', await token({}))
    expect(Date.now() - t0).toBeLessThan(1_800)
    const problem = await expectProblem(res, 503, 'upstream_unavailable')
    expect(problem.detail).toContain('key set')
    expect(reached).toBe(false)
    t0 = Date.now()
    await expectProblem((await call('/down', await token({}))).res, 503, 'upstream_unavailable')
    expect(Date.now() - t0).toBeLessThan(500)
  })

  test('one that refuses connections: 503 at once', async () => {
    const t0 = Date.now()
    await expectProblem((await call('/refused', await token({}))).res, 503, 'upstream_unavailable')
    expect(Date.now() - t0).toBeLessThan(1_000)
    await gw.waitFor('stderr', /cannot fetch or read the JWK set at http:\/\/127\.0\.0\.1:1\/jwks/)
  })

  test('rotation: a new kid is fetched after the cooldown, and not on every request before', async () => {
    await until(
      async () => fetches.rotating,
      (n) => n >= 1,
      5_000,
    )
    const t = await token({}, { key: next.privateKey, kid: 'rsa-2' })
    const burst = fetches.rotating
    for (let i = 0; i < 10; i++) await expectProblem((await call('/rotating', t)).res, 401, 'unauthenticated')
    expect(fetches.rotating - burst).toBeLessThanOrEqual(1)
    rotating = [KEYS[0]!, NEXT]
    const published = fetches.rotating
    const res = await until(
      async () => (await call('/rotating', t)).res.status,
      (s) => s === 200,
      5_000,
    )
    expect(res).toBe(200)
    expect(fetches.rotating - published).toBeGreaterThanOrEqual(1)
    expect(fetches.rotating - published).toBeLessThanOrEqual(2)
    // The old key still verifies.
    expect((await call('/rotating', await token({}))).res.status).toBe(200)
  })
})
