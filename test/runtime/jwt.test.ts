// `require jwt`, `require scope`, `require claim` in process: what a key is and which algorithms
// it may verify, the check-time diagnostics, the verified-token cache (its clock re-checks and
// its bound), app binding (including a store that is down), scopes and claims. The network
// cases (a JWK set server, rotation, a JWK set that is down) are in test/e2e/require-jwt.test.ts.
import { afterAll, describe, expect, test } from 'bun:test'
import { generateKeyPair, exportJWK, exportSPKI, SignJWT, type CryptoKey, type JWTPayload } from 'jose'
import { generateKeyPairSync } from 'node:crypto'
import { buildProgram, renderDiagnostics } from '../../src/index.ts'
import { algorithmsFor, ASYMMETRIC, readKeyMaterial, type KeyMaterial } from '../../src/runtime/jwt/keys.ts'
import { acquireVerifier } from '../../src/runtime/jwt/verifier.ts'
import { MAX_AGE_MS, TokenCache } from '../../src/runtime/jwt/token-cache.ts'
import { GatewayError } from '../../src/runtime/gateway-error.ts'
import { redisStore } from '../../src/store/redis.ts'
import { policyDir, removeDir } from '../helpers/gateway.ts'
import { expectProblem } from '../helpers/http.ts'

const T0 = Date.parse('2030-01-01T00:00:00Z')
const sec = (ms: number) => Math.floor(ms / 1000)
const ISS = 'https://issuer.test'
const SECRET = 'a-shared-hmac-secret-of-at-least-32-bytes!'

const rsa = await generateKeyPair('RS256', { extractable: true })
const ec = await generateKeyPair('ES256', { extractable: true })
const other = await generateKeyPair('RS256', { extractable: true })
const RSA_PEM = await exportSPKI(rsa.publicKey)
const EC_PEM = await exportSPKI(ec.publicKey)
const ED_PEM = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string
const RSA_1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string
const PRIVATE_PEM = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
const JWKS = JSON.stringify({ keys: [{ ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256' }] })

async function sign(key: CryptoKey | Uint8Array, alg: string, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg, ...header }).sign(key)
}
const base = (extra: JWTPayload = {}): JWTPayload => ({ iss: ISS, aud: 'api', sub: 'user-1', iat: sec(T0), exp: sec(T0) + 300, ...extra })

const material = (text: string) => readKeyMaterial(text) as KeyMaterial

describe('keys and their algorithms', () => {
  test('a PEM public key fits the algorithms of its type', () => {
    expect(material(RSA_PEM)).toMatchObject({ kind: 'public', fits: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] })
    expect(material(EC_PEM)).toMatchObject({ kind: 'public', fits: ['ES256'] })
    expect(material(ED_PEM)).toMatchObject({ kind: 'public', fits: ['EdDSA', 'Ed25519'] })
    expect(algorithmsFor(null, material(EC_PEM))).toEqual(['ES256'])
    expect(algorithmsFor(['PS256'], material(RSA_PEM))).toEqual(['PS256'])
    // As an environment variable often holds it: one line, newlines written as \n.
    expect(material(RSA_PEM.trim().replaceAll('\n', '\\n'))).toMatchObject({
      kind: 'public',
      fits: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'],
    })
  })

  test('a certificate gives its public key', () => {
    const out = Bun.spawnSync([
      'openssl',
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-384',
      '-nodes',
      '-subj',
      '/CN=issuer',
      '-keyout',
      '/dev/null',
      '-days',
      '1',
    ])
    expect(out.exitCode).toBe(0)
    expect(material(out.stdout.toString())).toMatchObject({ kind: 'public', fits: ['ES384'] })
  })

  test('keys that cannot verify are refused with the reason', () => {
    expect(readKeyMaterial(RSA_1024)).toContain('at least 2048')
    expect(readKeyMaterial(PRIVATE_PEM)).toContain('private key')
    expect(readKeyMaterial('-----BEGIN PUBLIC KEY-----\nbm9wZQ==\n-----END PUBLIC KEY-----\n')).toContain('cannot be read')
    expect(readKeyMaterial('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}')).toContain('symmetric')
    expect(readKeyMaterial('{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "c"}')).toContain('private key')
    expect(readKeyMaterial('{ not json')).toContain('not valid JSON')
  })

  test('a JWK set fits what its keys fit', () => {
    expect(material(JWKS)).toMatchObject({ kind: 'jwks', fits: ['ES256'] })
  })

  test('HMAC only with a shared secret, and only when listed', () => {
    const secret = material(SECRET)
    expect(secret.kind).toBe('secret')
    expect(algorithmsFor(null, secret)).toContain('name the algorithms')
    expect(algorithmsFor(['HS256'], secret)).toEqual(['HS256'])
    expect(algorithmsFor(['HS512'], secret)).toContain('at least 64 bytes')
    expect(algorithmsFor(['HS256', 'RS256'], secret)).toContain('RS256 needs a public key')
    expect(algorithmsFor(['HS256'], material(RSA_PEM))).toContain('key-confusion')
    expect(algorithmsFor(['HS256'], 'jwks')).toContain('needs a shared secret')
    expect(algorithmsFor(null, 'jwks')).toEqual([...ASYMMETRIC])
    expect(algorithmsFor(null, 'jwks')).not.toContain('HS256')
    expect(algorithmsFor(['ES256'], material(RSA_PEM))).toContain('does not fit')
  })
})

describe('the verified-token cache', () => {
  test('evicts the oldest entry when full', () => {
    const c = new TokenCache(3)
    for (const t of ['a', 'b', 'c', 'd']) c.put(t, { exp: sec(T0) + 3600 }, T0)
    expect(c.size).toBe(3)
    expect(c.get('a', T0)).toBeUndefined()
    expect(c.get('d', T0)?.claims).toEqual({ exp: sec(T0) + 3600 })
  })

  test('keeps an entry until the token expires (plus leeway) or for the maximum age, whichever is first', () => {
    const c = new TokenCache()
    c.put('short', { exp: sec(T0) + 5 }, T0)
    c.put('lenient', { exp: sec(T0) + 5 }, T0, 10_000)
    expect(c.get('lenient', T0 + 14_999)).toBeDefined()
    expect(c.get('lenient', T0 + 15_000)).toBeUndefined()
    c.put('long', { exp: sec(T0) + 86_400 }, T0)
    c.put('forever', {}, T0)
    expect(c.get('short', T0 + 4_999)).toBeDefined()
    expect(c.get('short', T0 + 5_000)).toBeUndefined()
    expect(c.get('long', T0 + MAX_AGE_MS - 1)).toBeDefined()
    expect(c.get('long', T0 + MAX_AGE_MS)).toBeUndefined()
    expect(c.get('forever', T0 + MAX_AGE_MS)).toBeUndefined()
  })
})

describe('the verifier', () => {
  const spec = { issuer: ISS, audience: ['api'], algorithms: ['RS256'], leewaySeconds: 0, keys: { material: material(RSA_PEM), text: RSA_PEM } }

  test('a verified token is answered from the cache, without a signature check', async () => {
    const { verifier, release } = acquireVerifier(spec)
    try {
      const token = await sign(rsa.privateKey, 'RS256', base())
      const first = verifier.verify(token, T0)
      expect(first).toBeInstanceOf(Promise)
      expect(await first).toMatchObject({ sub: 'user-1' })
      const again = verifier.verify(token, T0 + 1000)
      expect(again).not.toBeInstanceOf(Promise)
      expect(again).toMatchObject({ sub: 'user-1' })
      // Timing, for the report: uncached (a signature check each) vs cached.
      const tokens = await Promise.all(Array.from({ length: 200 }, (_, i) => sign(rsa.privateKey, 'RS256', base({ n: i }))))
      let t = performance.now()
      for (const tk of tokens) await verifier.verify(tk, T0)
      const uncached = (performance.now() - t) / tokens.length
      t = performance.now()
      for (let i = 0; i < 20_000; i++) verifier.verify(tokens[i % tokens.length]!, T0)
      const cached = (performance.now() - t) / 20_000
      console.log(`jwt verify RS256: uncached ${(uncached * 1000).toFixed(1)} µs, cached ${(cached * 1000).toFixed(2)} µs per token`)
      expect(cached).toBeLessThan(uncached)
    } finally {
      release()
    }
  })

  test('a cached token is refused once it expires, and before its nbf', async () => {
    const { verifier, release } = acquireVerifier(spec)
    try {
      const token = await sign(rsa.privateKey, 'RS256', base({ nbf: sec(T0) + 10, exp: sec(T0) + 30 }))
      expect(await verifier.verify(token, T0 + 10_000)).toMatchObject({ sub: 'user-1' })
      const early = verifier.verify(token, T0)
      expect(early).toBeInstanceOf(GatewayError)
      expect((early as GatewayError).detail).toBe('the token is not valid yet')
      expect(verifier.verify(token, T0 + 29_999)).toMatchObject({ sub: 'user-1' })
      const late = await verifier.verify(token, T0 + 30_000)
      expect(late).toBeInstanceOf(GatewayError)
      expect((late as GatewayError).detail).toBe('the token has expired')
    } finally {
      release()
    }
  })

  test('routes with the same settings share one verifier until the last lets go', () => {
    const a = acquireVerifier(spec)
    const b = acquireVerifier({ ...spec })
    const c = acquireVerifier({ ...spec, audience: ['other'] })
    expect(b.verifier).toBe(a.verifier)
    expect(c.verifier).not.toBe(a.verifier)
    a.release()
    b.release()
    c.release()
    const d = acquireVerifier(spec)
    expect(d.verifier).not.toBe(a.verifier)
    d.release()
  })
})

// A program from policy text (and key files), on a clock the test moves.
const dirs: string[] = []
afterAll(() => dirs.forEach(removeDir))

async function program(files: Record<string, string>, opts: { env?: Record<string, string>; store?: import('../../src/store/store.ts').Store } = {}) {
  let now = T0
  const dir = policyDir({ 'keys/rsa.pem': RSA_PEM, 'keys/ec.pem': EC_PEM, 'keys/secret.txt': `${SECRET}\n`, 'keys/jwks.json': JWKS, ...files })
  dirs.push(dir)
  const built = await buildProgram(dir, { now: () => now, env: opts.env ?? {}, store: opts.store })
  if (built.diagnostics) throw new Error(renderDiagnostics(built.diagnostics))
  const p = built.program
  return {
    at(ms: number) {
      now = ms
    },
    get: (path: string, token?: string, ip = '127.0.0.1', headers: Record<string, string> = {}) =>
      p.fetch(new Request(`http://gw.test${path}`, { headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) } }), {
        ip,
        tls: false,
      }),
    dispose: () => p.dispose(),
  }
}

async function diagnostics(text: string, files: Record<string, string> = {}): Promise<string> {
  const dir = policyDir({ 'keys/rsa.pem': RSA_PEM, 'keys/secret.txt': SECRET, 'keys/private.pem': PRIVATE_PEM, ...files, 'main.policy': text })
  dirs.push(dir)
  const built = await buildProgram(dir, { env: { SHORT: 'too-short' } })
  return built.diagnostics ? renderDiagnostics(built.diagnostics) : ''
}

describe('check-time errors', () => {
  const route = (line: string, extra = '') => `match GET /x {\n  ${line}\n${extra}  respond 200\n}\n`
  test.each([
    ['require jwt issuer "x"', "'require jwt' needs the issuer's keys"],
    ['require jwt jwks https://idp.test/jwks key file "keys/rsa.pem"', 'either jwks or key'],
    ['require jwt jwks http://idp.test/jwks', 'must be fetched over https'],
    ['require jwt jwks https://idp.test/jwks algorithms RS256, none', "'none' is never accepted"],
    ['require jwt jwks https://idp.test/jwks algorithms RSA256', "did you mean 'RS256'"],
    ['require jwt jwks https://idp.test/jwks algorithms HS256', 'HS256 needs a shared secret'],
    ['require jwt key file "keys/rsa.pem" algorithms HS256', 'key-confusion'],
    ['require jwt key file "keys/rsa.pem" algorithms ES256', 'ES256 does not fit'],
    ['require jwt key file "keys/secret.txt"', 'name the algorithms: algorithms HS256'],
    ['require jwt key env SHORT algorithms HS256', 'at least 32 bytes'],
    ['require jwt key file "keys/private.pem"', 'private key'],
    ['require jwt key file "keys/broken.pem"', 'cannot be read as a public key'],
    ['require jwt key file "keys/rsa.pem" issuers "x"', "did you mean 'issuer'"],
    ['require jwt key file "keys/rsa.pem" leeway 30', 'a duration like 30s'],
    ['require jwt key file "keys/rsa.pem" issuer "a" issuer "b"', "'issuer' is given twice"],
    ['require jwt key file "keys/rsa.pem" or magic', "unknown authentication method 'magic'"],
  ])('%s', async (line, message) => {
    const out = await diagnostics(route(line), { 'keys/broken.pem': '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n' })
    expect(out).toContain(message)
  })

  test('http is fine for a JWK set on this machine', async () => {
    expect(await diagnostics(route('require jwt jwks http://127.0.0.1:1/jwks'))).toBe('')
    expect(await diagnostics(route('require jwt jwks http://localhost:1/jwks'))).toBe('')
  })

  test('require scope and require claim need a route that verifies a token', async () => {
    const out = await diagnostics(route('require key', '  require scope orders:write\n  require claim role = admin\n'))
    expect(out).toContain("'require scope' needs a route that verifies a token")
    expect(out).toContain("'require claim' needs a route that verifies a token")
    expect(out).toContain('add a line before it: require jwt')
    expect(
      await diagnostics(
        route('require jwt key file "keys/rsa.pem"', '  require scope orders:write "api://x/y.read"\n  require claim role = admin\n'),
      ),
    ).toBe('')
  })

  test('a scope is printable ASCII without quotes', async () => {
    expect(await diagnostics(route('require jwt key file "keys/rsa.pem"', '  require scope "two words"\n'))).toContain('is not a scope')
  })
})

describe('requests', () => {
  const policy = (line: string, body = '') => ({
    'main.policy': `
app mobile {
  jwt-subject "mobile-client"
  group first
}
app walled {
  jwt-subject "walled-client"
  allow ip 10.0.0.0/8
}
match GET /who {
  ${line}
  ${body}
  respond 200 text "{jwt.sub}|{app.name}|{user.id}"
}
`,
  })

  test('the clock of the build decides expiry; leeway widens it', async () => {
    const strict = await program(policy('require jwt issuer "https://issuer.test" audience "api" key file "keys/rsa.pem"'))
    const lenient = await program(policy('require jwt issuer "https://issuer.test" audience "api" key file "keys/rsa.pem" leeway 30s'))
    const token = await sign(rsa.privateKey, 'RS256', base({ exp: sec(T0) + 60 }))
    expect((await strict.get('/who', token)).status).toBe(200)
    strict.at(T0 + 61_000)
    const p = await expectProblem(await strict.get('/who', token), 401, 'unauthenticated')
    expect(p.detail).toBe('the token has expired')
    lenient.at(T0 + 61_000)
    expect((await lenient.get('/who', token)).status).toBe(200)
    lenient.at(T0 + 91_000)
    await expectProblem(await lenient.get('/who', token), 401, 'unauthenticated')
  })

  test('the app is the one whose jwt-subject is azp, else client_id, else sub; the user is sub', async () => {
    const gw = await program(policy('require jwt key file "keys/rsa.pem"'))
    const text = async (claims: JWTPayload) => (await gw.get('/who', await sign(rsa.privateKey, 'RS256', claims))).text()
    expect(await text({ sub: 'u1', azp: 'mobile-client' })).toBe('u1|mobile|u1')
    expect(await text({ sub: 'u1', azp: 'unknown', client_id: 'mobile-client' })).toBe('u1|mobile|u1')
    expect(await text({ sub: 'mobile-client' })).toBe('mobile-client|mobile|mobile-client')
    expect(await text({ sub: 'u2' })).toBe('u2||u2')
    expect(await text({ azp: 'nobody' })).toBe('||')
  })

  test('app-claim names the one claim that selects the app', async () => {
    const gw = await program(policy('require jwt key file "keys/rsa.pem" app-claim client_id'))
    const text = async (claims: JWTPayload) => (await gw.get('/who', await sign(rsa.privateKey, 'RS256', claims))).text()
    expect(await text({ sub: 'u1', azp: 'mobile-client' })).toBe('u1||u1')
    expect(await text({ sub: 'u1', client_id: 'mobile-client' })).toBe('u1|mobile|u1')
  })

  test("the app's own allow ip applies", async () => {
    const gw = await program(policy('require jwt key file "keys/rsa.pem"'))
    const token = await sign(rsa.privateKey, 'RS256', { sub: 'u', azp: 'walled-client' })
    await expectProblem(await gw.get('/who', token, '203.0.113.9'), 403, 'forbidden')
    expect(await (await gw.get('/who', token, '10.1.2.3')).text()).toBe('u|walled|u')
  })

  test('allow app refuses a token that names no app', async () => {
    const gw = await program(policy('require jwt key file "keys/rsa.pem"', 'allow app mobile'))
    await expectProblem(await gw.get('/who', await sign(rsa.privateKey, 'RS256', { sub: 'u' })), 403, 'forbidden')
    expect((await gw.get('/who', await sign(rsa.privateKey, 'RS256', { sub: 'u', azp: 'mobile-client' }))).status).toBe(200)
  })

  test('with the store down, a token that may name a store app is 503; file apps and app-less tokens pass', async () => {
    const store = redisStore('redis://127.0.0.1:1', { prefix: `portcullis-test:jwt:${process.pid}:` })
    try {
      const gw = await program(policy('require jwt key file "keys/rsa.pem"'), { store })
      await expectProblem(await gw.get('/who', await sign(rsa.privateKey, 'RS256', { sub: 'u', azp: 'maybe-a-store-app' })), 503, 'store_unavailable')
      expect(await (await gw.get('/who', await sign(rsa.privateKey, 'RS256', { sub: 'u', azp: 'mobile-client' }))).text()).toBe('u|mobile|u')
      expect(await (await gw.get('/who', await sign(rsa.privateKey, 'RS256', { iss: 'x' }))).text()).toBe('||')
    } finally {
      await store.close()
    }
  })

  test('HS256 with a shared secret, when listed; an RS256 token is then refused', async () => {
    const gw = await program(policy('require jwt key file "keys/secret.txt" algorithms HS256'))
    const secret = new TextEncoder().encode(SECRET)
    expect((await gw.get('/who', await sign(secret, 'HS256', { sub: 'h' }))).status).toBe(200)
    await expectProblem(await gw.get('/who', await sign(rsa.privateKey, 'RS256', { sub: 'h' })), 401, 'unauthenticated')
    await expectProblem(await gw.get('/who', await sign(new TextEncoder().encode(`${SECRET}x`), 'HS256', { sub: 'h' })), 401, 'unauthenticated')
  })

  test('a JWK set in a file: the key is chosen by kid', async () => {
    const gw = await program(policy('require jwt key file "keys/jwks.json"'))
    expect((await gw.get('/who', await sign(ec.privateKey, 'ES256', { sub: 'e' }, { kid: 'ec-1' }))).status).toBe(200)
    const p = await expectProblem(await gw.get('/who', await sign(ec.privateKey, 'ES256', { sub: 'e' }, { kid: 'ec-2' })), 401, 'unauthenticated')
    expect(p.detail).toBe('no known key matches the token')
  })

  test('require key or jwt: either credential, each checked', async () => {
    const gw = await program(
      {
        ...policy('require key or jwt key file "keys/rsa.pem"'),
        'apps.policy': 'app keyed {\n  api-key env API_KEY\n}\n',
      },
      { env: { API_KEY: 'an-api-key-0123456789' } },
    )
    const byKey = await gw.get('/who', undefined, '127.0.0.1', { 'x-api-key': 'an-api-key-0123456789' })
    expect(await byKey.text()).toBe('|keyed|')
    expect(await (await gw.get('/who', await sign(rsa.privateKey, 'RS256', { sub: 'u', azp: 'mobile-client' }))).text()).toBe('u|mobile|u')
    const none = await gw.get('/who')
    await expectProblem(none, 401, 'unauthenticated')
    expect(none.headers.get('www-authenticate')).toBe('ApiKey, Bearer')
    await expectProblem(await gw.get('/who', await sign(other.privateKey, 'RS256', { sub: 'u' })), 401, 'unauthenticated')
  })

  test('a token signed by another key is refused, whatever its claims', async () => {
    const gw = await program(policy('require jwt key file "keys/rsa.pem"'))
    const res = await gw.get('/who', await sign(other.privateKey, 'RS256', base()))
    expect((await expectProblem(res, 401, 'unauthenticated')).detail).toBe("the token's signature is not valid")
    expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"')
  })

  test('require scope: every listed scope, from scope or scp', async () => {
    const gw = await program(policy('require jwt key file "keys/rsa.pem"', 'require scope orders:read orders:write'))
    const status = async (claims: JWTPayload) => (await gw.get('/who', await sign(rsa.privateKey, 'RS256', { sub: 's', ...claims }))).status
    expect(await status({ scope: 'profile orders:read orders:write' })).toBe(200)
    expect(await status({ scp: ['orders:write', 'orders:read'] })).toBe(200)
    expect(await status({ scp: 'orders:read orders:write' })).toBe(200)
    expect(await status({ scope: 'orders:read', scp: ['orders:write'] })).toBe(200)
    const res = await gw.get('/who', await sign(rsa.privateKey, 'RS256', { sub: 's', scope: 'orders:read orders:writer' }))
    expect((await expectProblem(res, 403, 'forbidden')).detail).toContain('orders:read orders:write')
    expect(res.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="orders:read orders:write"')
    expect(await status({})).toBe(403)
  })

  test('require claim: equal text, or held by a list', async () => {
    const gw = await program(
      policy('require jwt key file "keys/rsa.pem"', 'require claim role = admin\n  require claim "https://x.test/tenant" = 42'),
    )
    const status = async (claims: JWTPayload) => (await gw.get('/who', await sign(rsa.privateKey, 'RS256', { sub: 'c', ...claims }))).status
    const tenant = { 'https://x.test/tenant': 42 }
    expect(await status({ role: 'admin', ...tenant })).toBe(200)
    expect(await status({ role: ['user', 'admin'], 'https://x.test/tenant': '42' })).toBe(200)
    expect(await status({ role: 'administrator', ...tenant })).toBe(403)
    expect(await status({ role: ['user'], ...tenant })).toBe(403)
    expect(await status({ role: { admin: true }, ...tenant })).toBe(403)
    expect(await status({ role: 'admin', 'https://x.test/tenant': 43 })).toBe(403)
    expect(await status({ role: 'admin' })).toBe(403)
  })
})
