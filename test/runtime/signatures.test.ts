// RFC 9421 verification units: the Appendix B test vectors, component derivation (§2.1, §2.2),
// Content-Digest (RFC 9530), the gateway's rules (coverage, created/expires/nonce, alg, keyid),
// and, in process, `require hmac`'s check-time diagnostics and key rotation under a set clock.
import { describe, expect, test } from 'bun:test'
import { createHmac, createPublicKey, generateKeyPairSync, sign, constants, type KeyObject } from 'node:crypto'
import { parseDictionary, Token, type InnerList, type Item } from 'structured-headers'
import { buildProgram } from '../../src/compile/build-program.ts'
import type { GatewayError } from '../../src/runtime/gateway-error.ts'
import type { App, AppDirectory, Credential } from '../../src/runtime/identity.ts'
import {
  componentOf,
  componentOfText,
  normalAuthority,
  Underivable,
  type Component,
  type SignedRequest,
} from '../../src/runtime/signatures/components.ts'
import { contentDigestOf, contentDigestProblem } from '../../src/runtime/signatures/content-digest.ts'
import { algorithmsFor, componentsOf, signatureBase, verifySignature, type VerifiedSignature } from '../../src/runtime/signatures/verify.ts'
import { memoryStore } from '../../src/store/memory.ts'
import { policyDir, removeDir } from '../helpers/gateway.ts'

// RFC 9421 Appendix B.1 keys (public test keys of the RFC).
const SHARED_SECRET = Buffer.from('uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==', 'base64')
const ED25519_PUBLIC = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----`
const RSA_PSS_PUBLIC = `-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAr4tmm3r20Wd/PbqvP1s2+QEtvpuRaV8Yq40gjUR8y2Rjxa6dpG2G
XHbPfvMs8ct+Lh1GH45x28Rw3Ry53mm+oAXjyQ86OnDkZ5N8lYbggD4O3w6M6pAv
Lkhk95AndTrifbIFPNU8PPMO7OyrFAHqgDsznjPFmTOtCEcN2Z1FpWgchwuYLPL+
Wokqltd11nqqzi+bJ9cvSKADYdUAAN5WUtzdpiy6LbTgSxP7ociU4Tn0g5I6aDZJ
7A8Lzo0KSyZYoA485mqcO0GVAdVw9lq4aOT9v6d+nb4bnNkQVklLQ3fVAvJm+xdD
Op9LCNCN48V2pnDOkFV6+U9nV5oyc6XI2wIDAQAB
-----END RSA PUBLIC KEY-----`

// The test request of RFC 9421 Appendix B.2 (body `{"hello": "world"}`).
const RFC_HEADERS: Record<string, string> = {
  host: 'example.com',
  date: 'Tue, 20 Apr 2021 02:07:55 GMT',
  'content-type': 'application/json',
  'content-digest': 'sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:',
  'content-length': '18',
}
const RFC_BODY = '{"hello": "world"}'
const CREATED_MS = 1618884473 * 1000

function view(target: string, headers: Record<string, string> = RFC_HEADERS, method = 'POST', scheme = 'https'): SignedRequest {
  return { method, scheme, authority: normalAuthority(headers.host ?? '', scheme), target, header: (n) => headers[n] ?? null }
}
const RFC_REQUEST = view('/foo?param=Value&Pet=dog')

function app(over: Partial<App> = {}): App {
  return {
    name: 'partner',
    source: 'file',
    key: 'k1',
    secrets: [],
    apiKeys: [],
    publicKey: null,
    certs: new Set(),
    jwtSubject: null,
    allowIp: null,
    allowIpText: [],
    tier: null,
    group: null,
    meta: {},
    ...over,
  }
}
const secret = (value: string | Uint8Array, from: number | null = null, until: number | null = null): Credential => ({
  value: typeof value === 'string' ? new TextEncoder().encode(value) : value,
  from,
  until,
})

// Verifies one labelled signature of the RFC's request with the gateway's pieces.
function verifyVector(inputHeader: string, signatureHeader: string, label: string, who: App, r = RFC_REQUEST): { ok: boolean; base: string } {
  const input = parseDictionary(inputHeader).get(label) as InnerList
  const components = componentsOf(input)
  if (typeof components === 'string') throw new Error(components)
  const base = signatureBase(components, input, r)
  if (base instanceof Underivable) throw new Error(base.reason)
  const sig = new Uint8Array((parseDictionary(signatureHeader).get(label) as Item)[0] as ArrayBuffer)
  const algs = algorithmsFor(who, input[1].get('alg'))
  if (typeof algs === 'string') throw new Error(algs)
  return { ok: algs.some((a) => a.verify(Buffer.from(base), sig, who, CREATED_MS)), base }
}

describe('RFC 9421 Appendix B test vectors', () => {
  const hmacApp = app({ key: 'test-shared-secret', secrets: [secret(SHARED_SECRET)] })
  const edApp = app({ key: 'test-key-ed25519', publicKey: createPublicKey(ED25519_PUBLIC) })
  const pssApp = app({ key: 'test-key-rsa-pss', publicKey: createPublicKey({ key: RSA_PSS_PUBLIC, format: 'pem', type: 'pkcs1' }) })

  test('B.2.5 hmac-sha256 with the shared test key', () => {
    const input = 'sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"'
    const sig = 'sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:'
    const { ok, base } = verifyVector(input, sig, 'sig-b25', hmacApp)
    expect(base).toBe(
      '"date": Tue, 20 Apr 2021 02:07:55 GMT\n"@authority": example.com\n"content-type": application/json\n' +
        '"@signature-params": ("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"',
    )
    expect(ok).toBe(true)
    // Another secret, or another covered value, does not verify.
    expect(verifyVector(input, sig, 'sig-b25', app({ secrets: [secret('not the key')] })).ok).toBe(false)
    expect(verifyVector(input, sig, 'sig-b25', hmacApp, view('/foo', { ...RFC_HEADERS, 'content-type': 'text/plain' })).ok).toBe(false)
  })

  test('B.2.6 ed25519', () => {
    const input = 'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"'
    const sig = 'sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:'
    expect(verifyVector(input, sig, 'sig-b26', edApp).ok).toBe(true)
    expect(verifyVector(input, sig, 'sig-b26', edApp, view('/bar?param=Value&Pet=dog')).ok).toBe(false)
    expect(verifyVector(input, sig, 'sig-b26', edApp, view('/foo', RFC_HEADERS, 'PUT')).ok).toBe(false)
  })

  test('B.2.1 rsa-pss-sha512, minimal coverage', () => {
    const input = 'sig-b21=();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd"'
    const sig =
      'sig-b21=:d2pmTvmbncD3xQm8E9ZV2828BjQWGgiwAaw5bAkgibUopemLJcWDy/lkbbHAve4cRAtx31Iq786U7it++wgGxbtRxf8Udx7zFZsckzXaJMkA7ChG52eSkFxykJeNqsrWH5S+oxNFlD4dzVuwe8DhTSja8xxbR/Z2cOGdCbzR72rgFWhzx2VjBqJzsPLMIQKhO4DGezXehhWwE56YCE+O6c0mKZsfxVrogUvA4HELjVKWmAvtl6UnCh8jYzuVG5WSb/QEVPnP5TmcAnLH1g+s++v6d4s8m0gCw1fV5/SITLq9mhho8K3+7EPYTU8IU1bLhdxO5Nyt8C8ssinQ98Xw9Q==:'
    expect(verifyVector(input, sig, 'sig-b21', pssApp).ok).toBe(true)
    expect(verifyVector(input.replace('created=1618884473', 'created=1618884474'), sig, 'sig-b21', pssApp).ok).toBe(false)
  })

  test('B.2.2 rsa-pss-sha512, selective components with @query-param', () => {
    const input = 'sig-b22=("@authority" "content-digest" "@query-param";name="Pet");created=1618884473;keyid="test-key-rsa-pss";tag="header-example"'
    const sig =
      'sig-b22=:LjbtqUbfmvjj5C5kr1Ugj4PmLYvx9wVjZvD9GsTT4F7GrcQEdJzgI9qHxICagShLRiLMlAJjtq6N4CDfKtjvuJyE5qH7KT8UCMkSowOB4+ECxCmT8rtAmj/0PIXxi0A0nxKyB09RNrCQibbUjsLS/2YyFYXEu4TRJQzRw1rLEuEfY17SARYhpTlaqwZVtR8NV7+4UKkjqpcAoFqWFQh62s7Cl+H2fjBSpqfZUJcsIk4N6wiKYd4je2U/lankenQ99PZfB4jY3I5rSV2DSBVkSFsURIjYErOs0tFTQosMTAoxk//0RoKUqiYY8Bh0aaUEb0rQl3/XaVe4bXTugEjHSw==:'
    const { ok, base } = verifyVector(input, sig, 'sig-b22', pssApp)
    expect(base.split('\n')[2]).toBe('"@query-param";name="Pet": dog')
    expect(ok).toBe(true)
    expect(verifyVector(input, sig, 'sig-b22', pssApp, view('/foo?param=Value&Pet=cat')).ok).toBe(false)
  })

  test('B.2.3 rsa-pss-sha512, full coverage', () => {
    const input =
      'sig-b23=("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss"'
    const sig =
      'sig-b23=:bbN8oArOxYoyylQQUU6QYwrTuaxLwjAC9fbY2F6SVWvh0yBiMIRGOnMYwZ/5MR6fb0Kh1rIRASVxFkeGt683+qRpRRU5p2voTp768ZrCUb38K0fUxN0O0iC59DzYx8DFll5GmydPxSmme9v6ULbMFkl+V5B1TP/yPViV7KsLNmvKiLJH1pFkh/aYA2HXXZzNBXmIkoQoLd7YfW91kE9o/CCoC1xMy7JA1ipwvKvfrs65ldmlu9bpG6A9BmzhuzF8Eim5f8ui9eH8LZH896+QIF61ka39VBrohr9iyMUJpvRX2Zbhl5ZJzSRxpJyoEZAFL2FUo5fTIztsDZKEgM4cUA==:'
    expect(verifyVector(input, sig, 'sig-b23', pssApp).ok).toBe(true)
    expect(verifyVector(input, sig, 'sig-b23', pssApp, view('/foo?param=Value&Pet=dog&x=1')).ok).toBe(false)
  })

  test("the request's Content-Digest (RFC 9530) matches its body; a changed body does not", () => {
    expect(contentDigestProblem(RFC_HEADERS['content-digest']!, Buffer.from(RFC_BODY))).toBeNull()
    expect(contentDigestProblem(RFC_HEADERS['content-digest']!, Buffer.from('{"hello": "World"}'))).toContain('does not match')
    // RFC 9530 Appendix: sha-256 of the same body.
    expect(contentDigestOf(RFC_BODY)).toBe('sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:')
  })
})

describe('Content-Digest', () => {
  const body = Buffer.from('{"a":1}')
  test('every sha-256 / sha-512 present must match; at least one must be there', () => {
    const good256 = contentDigestOf(body)
    expect(contentDigestProblem(good256, body)).toBeNull()
    expect(contentDigestProblem(`${good256}, md5=:AAAA:`, body)).toBeNull()
    expect(contentDigestProblem(`${good256}, sha-512=:${Buffer.alloc(64).toString('base64')}:`, body)).toContain('sha-512')
    expect(contentDigestProblem('md5=:AAAA:', body)).toContain('neither')
    expect(contentDigestProblem('sha-256="abc"', body)).toContain('not a byte sequence')
    expect(contentDigestProblem('sha-256=:((:', body)).toContain('not a valid structured field')
  })
})

describe('components (RFC 9421 §2.1, §2.2)', () => {
  const derive = (id: string, r: SignedRequest) => {
    const c = componentOfText(id)
    if (typeof c === 'string') throw new Error(c)
    return c.derive(r)
  }

  test('derived components of a request', () => {
    const r = view('/path?param=value&foo=bar&baz=batman&qux=', { host: 'www.Example.com:443' }, 'POST', 'https')
    expect(derive('@method', r)).toBe('POST')
    expect(derive('@authority', r)).toBe('www.example.com')
    expect(derive('@scheme', r)).toBe('https')
    expect(derive('@target-uri', r)).toBe('https://www.example.com/path?param=value&foo=bar&baz=batman&qux=')
    expect(derive('@request-target', r)).toBe('/path?param=value&foo=bar&baz=batman&qux=')
    expect(derive('@path', r)).toBe('/path')
    expect(derive('@query', r)).toBe('?param=value&foo=bar&baz=batman&qux=')
    expect(derive('@query', view('/path', { host: 'a' }))).toBe('?')
    expect(derive('@query-param;name=baz', r)).toEqual(['batman'])
    expect(derive('@query-param;name=qux', r)).toEqual([''])
    expect(derive('@query-param;name=nope', r)).toBeInstanceOf(Underivable)
    // A non-default port stays.
    expect(derive('@authority', view('/', { host: 'example.com:8080' }, 'GET', 'http'))).toBe('example.com:8080')
  })

  test('@query-param decodes, then re-encodes names and values (§2.2.8 examples); repeats give one line each', () => {
    const r = view('/parameters?var=this%20is%20a%20big%0Avalue&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something&v=1&v=2')
    expect(derive('@query-param;name=var', r)).toEqual(['this%20is%20a%20big%0Avalue'])
    expect(derive('@query-param;name=bar', r)).toEqual(['with%20plus%20whitespace'])
    expect(derive('@query-param;name="fa%C3%A7ade%22%3A%20"', r)).toEqual(['something'])
    expect(derive('@query-param;name=v', r)).toEqual(['1', '2'])
  })

  test('header fields: combined values, ;key on a dictionary member, ;sf re-serialised', () => {
    const h = { host: 'a', 'example-dict': ' a=1,    b=2;x=1;y=2,   c=(a   b   c)', 'content-digest': 'sha-256=:AAAA:,   sha-512=:BBBB:' }
    const r = view('/', h)
    expect(derive('example-dict', r)).toBe(' a=1,    b=2;x=1;y=2,   c=(a   b   c)')
    expect(derive('example-dict;key=a', r)).toBe('1')
    expect(derive('example-dict;key=b', r)).toBe('2;x=1;y=2')
    expect(derive('example-dict;key=c', r)).toBe('(a b c)')
    expect(derive('example-dict;key=d', r)).toBeInstanceOf(Underivable)
    expect(derive('content-digest;sf', r)).toBe('sha-256=:AAAA:, sha-512=:BBBB:')
    expect(derive('x-missing', r)).toBeInstanceOf(Underivable)
  })

  test('what is refused, with the reason', () => {
    const refused = (text: string) => {
      const c = componentOfText(text)
      expect(typeof c).toBe('string')
      return c as string
    }
    expect(refused('content-type;bs')).toContain(';bs')
    expect(refused('@method;req')).toContain(';req')
    expect(refused('content-type;tr')).toContain(';tr')
    expect(refused('@status')).toContain('response')
    expect(refused('@signature-params')).toContain('cannot be covered')
    expect(refused('@nope')).toContain('unknown derived component')
    expect(refused('@query-param')).toContain(';name')
    expect(refused('@path;name=x')).toContain('no parameters')
    expect(refused('Content-Type')).toContain('lower case')
    expect(refused('example-dict;sf')).toContain('structured type')
    expect(refused('x-a;foo=1')).toContain('unknown parameter')
    // In a signature, a component must be a string, and @query-param's name a string too.
    expect(componentOf([new Token('content-type'), new Map()])).toContain('quoted string')
    expect(componentOf(['@query-param', new Map([['name', new Token('Pet')]])])).toContain('quoted string')
    expect(componentOf(['content-type', new Map([['key', 1]])])).toContain('unknown parameter')
  })
})

// A signer written here, independently of the gateway: the base is built by hand.
function hmacSigned(key: string | Uint8Array, lines: [string, string][], params: string, label = 'sig1') {
  const list = `(${lines.map(([id]) => id).join(' ')})${params}`
  const base = `${lines.map(([id, v]) => `${id}: ${v}\n`).join('')}"@signature-params": ${list}`
  const mac = createHmac('sha256', key).update(base).digest('base64')
  return { input: `${label}=${list}`, signature: `${label}=:${mac}:` }
}

function directory(apps: App[], unavailable: string[] = []): AppDirectory {
  return {
    byName: (n) => apps.find((a) => a.name === n) ?? null,
    byKeyId: (k) => (unavailable.includes(k) ? 'unavailable' : (apps.find((a) => a.key === k) ?? null)),
    byApiKey: () => null,
    byCert: () => null,
    bySubject: () => null,
    names: () => ({ file: apps.map((a) => a.name), store: [] }),
  }
}

describe('verifySignature: the rules of `require hmac`', () => {
  const NOW = 1_900_000_000_000
  const created = Math.floor(NOW / 1000) - 10
  const partner = app({ key: 'ak_p', secrets: [secret('s3cret-s3cret')] })
  const apps = directory([partner], ['ak_store'])
  const r = view('/orders/7?x=1', { host: 'api.example.com', 'x-date': 'today' }, 'GET', 'https')
  const base: [string, string][] = [
    ['"@method"', 'GET'],
    ['"@target-uri"', 'https://api.example.com/orders/7?x=1'],
  ]
  const params = (over = '') => `;created=${created};nonce="n-1";keyid="ak_p"${over}`
  const rules = { windowMs: 300_000, covers: [] as string[] }
  const run = (s: { input: string; signature: string }, opts: { rules?: typeof rules; hasBody?: boolean; now?: number; req?: SignedRequest } = {}) =>
    verifySignature(s.input, s.signature, opts.req ?? r, opts.hasBody ?? false, apps, opts.rules ?? rules, opts.now ?? NOW)
  const refused = (v: VerifiedSignature | GatewayError, status = 401) => {
    expect('code' in v).toBe(true)
    const e = v as GatewayError
    expect(e.status).toBe(status)
    return e.detail
  }

  test('a good signature names the app, label, keyid, nonce and signature value', () => {
    const s = hmacSigned('s3cret-s3cret', base, params())
    const v = run(s) as VerifiedSignature
    expect(v.app).toBe(partner)
    expect(v).toMatchObject({ label: 'sig1', keyid: 'ak_p', nonce: 'n-1', coversDigest: false })
    expect(v.value).toBe(s.signature.slice('sig1=:'.length, -1))
    // @path + @query instead of @target-uri is enough too.
    const split = hmacSigned(
      's3cret-s3cret',
      [
        ['"@method"', 'GET'],
        ['"@path"', '/orders/7'],
        ['"@query"', '?x=1'],
      ],
      params(),
    )
    expect('app' in run(split)).toBe(true)
  })

  test('a wrong secret, a tampered method, target, query or covered header does not verify', () => {
    expect(refused(run(hmacSigned('other-secret', base, params())))).toBe('the signature does not verify')
    const s = hmacSigned('s3cret-s3cret', [...base, ['"x-date"', 'today']], params())
    expect('app' in run(s)).toBe(true)
    for (const req of [
      view('/orders/7?x=1', { host: 'api.example.com', 'x-date': 'today' }, 'DELETE', 'https'),
      view('/orders/8?x=1', { host: 'api.example.com', 'x-date': 'today' }, 'GET', 'https'),
      view('/orders/7?x=2', { host: 'api.example.com', 'x-date': 'today' }, 'GET', 'https'),
      view('/orders/7?x=1', { host: 'evil.example.com', 'x-date': 'today' }, 'GET', 'https'),
      view('/orders/7?x=1', { host: 'api.example.com', 'x-date': 'tomorrow' }, 'GET', 'https'),
    ])
      expect(refused(run(s, { req }))).toBe('the signature does not verify')
    expect(refused(run(s, { req: view('/orders/7?x=1', { host: 'api.example.com' }, 'GET', 'https') }))).toContain("'x-date' is missing")
  })

  test('coverage: @method, the target, content-digest with a body, and the route covers', () => {
    expect(refused(run(hmacSigned('s3cret-s3cret', [base[1]!], params())))).toContain('"@method"')
    expect(refused(run(hmacSigned('s3cret-s3cret', [base[0]!, ['"@path"', '/orders/7']], params())))).toContain('"@target-uri"')
    expect(refused(run(hmacSigned('s3cret-s3cret', base, params()), { hasBody: true }))).toContain('"content-digest"')
    const covers = { windowMs: 300_000, covers: ['"x-date"'] }
    expect(refused(run(hmacSigned('s3cret-s3cret', base, params()), { rules: covers }))).toContain('"x-date"')
    expect('app' in run(hmacSigned('s3cret-s3cret', [...base, ['"x-date"', 'today']], params()), { rules: covers })).toBe(true)
    expect(refused(run(hmacSigned('s3cret-s3cret', [...base, base[0]!], params())))).toContain('twice')
  })

  test('created within the window, not in the future, expires not past; a nonce is required', () => {
    const at = (c: number, extra = '') => hmacSigned('s3cret-s3cret', base, `;created=${c};nonce="n";keyid="ak_p"${extra}`)
    const nowS = NOW / 1000
    expect('app' in run(at(nowS - 299))).toBe(true)
    expect(refused(run(at(nowS - 301)))).toContain('too old')
    expect(refused(run(at(nowS - 61), { rules: { windowMs: 60_000, covers: [] } }))).toContain('too old')
    expect('app' in run(at(nowS + 4))).toBe(true)
    expect(refused(run(at(nowS + 60)))).toContain('future')
    expect(refused(run(at(nowS - 10, `;expires=${nowS - 1}`)))).toContain('expired')
    expect('app' in run(at(nowS - 10, `;expires=${nowS + 60}`))).toBe(true)
    expect(refused(run(hmacSigned('s3cret-s3cret', base, `;created=${created};keyid="ak_p"`)))).toContain('nonce')
    expect(refused(run(hmacSigned('s3cret-s3cret', base, `;nonce="n";keyid="ak_p"`)))).toContain('created')
    expect(refused(run(hmacSigned('s3cret-s3cret', base, `;created=${created};nonce=tok;keyid="ak_p"`)))).toContain('nonce')
  })

  test('alg must fit the key; the keyid must name an app; a store that is down is a 503', () => {
    expect('app' in run(hmacSigned('s3cret-s3cret', base, params(';alg="hmac-sha256"')))).toBe(true)
    expect(refused(run(hmacSigned('s3cret-s3cret', base, params(';alg="ed25519"'))))).toContain("does not match the app's key")
    expect(refused(run(hmacSigned('s3cret-s3cret', base, params(';alg="hmac-sha1"'))))).toContain('not supported')
    expect(refused(run(hmacSigned('s3cret-s3cret', base, `;created=${created};nonce="n";keyid="ak_nobody"`)))).toBe(
      'the signature keyid is not known',
    )
    expect(refused(run(hmacSigned('s3cret-s3cret', base, `;created=${created};nonce="n"`)))).toContain('keyid')
    expect(refused(run(hmacSigned('s3cret-s3cret', base, `;created=${created};nonce="n";keyid="ak_store"`)), 503)).toContain('store')
  })

  test('malformed headers and a missing signature member are 401s', () => {
    const s = hmacSigned('s3cret-s3cret', base, params())
    expect(refused(run({ input: 'sig1=("@method"', signature: s.signature }))).toContain('structured field')
    expect(refused(run({ input: s.input, signature: 'other=:AAAA:' }))).toContain("for 'sig1'")
    expect(refused(run({ input: s.input, signature: 'sig1="text"' }))).toContain("for 'sig1'")
  })

  test('several signatures: the first whose keyid names an app is verified', () => {
    const foreign = hmacSigned('x', base, `;created=${created};nonce="a";keyid="proxy-key"`, 'proxy')
    const mine = hmacSigned('s3cret-s3cret', base, params(), 'mine')
    const v = run({ input: `${foreign.input}, ${mine.input}`, signature: `${foreign.signature}, ${mine.signature}` }) as VerifiedSignature
    expect(v.label).toBe('mine')
    // A bad signature for the app's label is not rescued by another label.
    const bad = hmacSigned('wrong', base, params(), 'first')
    expect(refused(run({ input: `${bad.input}, ${mine.input}`, signature: `${bad.signature}, ${mine.signature}` }))).toBe(
      'the signature does not verify',
    )
  })

  test('key rotation: each secret only inside its window', () => {
    const rotating = app({ key: 'ak_p', secrets: [secret('old-secret', null, NOW + 1000), secret('new-secret', NOW + 500, null)] })
    const dir = directory([rotating])
    const check = (key: string, now: number) => {
      const s = hmacSigned(key, base, `;created=${Math.floor(now / 1000)};nonce="n";keyid="ak_p"`)
      return 'app' in verifySignature(s.input, s.signature, r, false, dir, rules, now)
    }
    expect(check('old-secret', NOW)).toBe(true)
    expect(check('new-secret', NOW)).toBe(false)
    expect(check('new-secret', NOW + 600)).toBe(true)
    expect(check('old-secret', NOW + 600)).toBe(true)
    expect(check('old-secret', NOW + 2000)).toBe(false)
  })
})

describe('asymmetric algorithms with generated keys', () => {
  const lines: [string, string][] = [
    ['"@method"', 'GET'],
    ['"@target-uri"', 'https://api.example.com/orders/7?x=1'],
  ]
  const r = view('/orders/7?x=1', { host: 'api.example.com' }, 'GET', 'https')
  const now = 1_900_000_000_000
  const signWith = (alg: string | null, signer: (data: Buffer) => Buffer) => {
    const list = `(${lines.map(([id]) => id).join(' ')});created=${now / 1000};nonce="n";keyid="ak_a"${alg ? `;alg="${alg}"` : ''}`
    const base = `${lines.map(([id, v]) => `${id}: ${v}\n`).join('')}"@signature-params": ${list}`
    return { input: `sig1=${list}`, signature: `sig1=:${signer(Buffer.from(base)).toString('base64')}:` }
  }
  const verifies = (publicKey: KeyObject, s: { input: string; signature: string }) =>
    'app' in verifySignature(s.input, s.signature, r, false, directory([app({ key: 'ak_a', publicKey })]), { windowMs: 300_000, covers: [] }, now)

  test.each([
    ['ed25519', () => generateKeyPairSync('ed25519'), (k: KeyObject) => (d: Buffer) => sign(null, d, k)],
    [
      'rsa-pss-sha512',
      () => generateKeyPairSync('rsa', { modulusLength: 2048 }),
      (k: KeyObject) => (d: Buffer) => sign('sha512', d, { key: k, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 64 }),
    ],
    [
      'ecdsa-p256-sha256',
      () => generateKeyPairSync('ec', { namedCurve: 'P-256' }),
      (k: KeyObject) => (d: Buffer) => sign('sha256', d, { key: k, dsaEncoding: 'ieee-p1363' }),
    ],
    [
      'ecdsa-p384-sha384',
      () => generateKeyPairSync('ec', { namedCurve: 'P-384' }),
      (k: KeyObject) => (d: Buffer) => sign('sha384', d, { key: k, dsaEncoding: 'ieee-p1363' }),
    ],
  ] as const)('%s verifies with the public key, not with another', (alg, pair, signer) => {
    const { publicKey, privateKey } = pair()
    const s = signWith(alg, signer(privateKey))
    expect(verifies(publicKey, s)).toBe(true)
    expect(verifies(pair().publicKey, s)).toBe(false)
    // Without alg, the app's key type decides.
    expect(verifies(publicKey, signWith(null, signer(privateKey)))).toBe(true)
  })
})

describe('require hmac in process: checks and the build clock', () => {
  test('covers must name valid components; a window is at most 1d', async () => {
    const dir = policyDir({
      'p.policy': `
app a {
  key "ak_a"
  secret env HMAC_TEST_SECRET
}
match GET /a { require hmac covers "@method" "Content-Type" "@query-param"; respond 200 }
match GET /b { require hmac window 2d; respond 200 }
match GET /c { require hmac window 1d covers "@query-param;name=id" "content-digest;sf" "x-date"; respond 200 }
`,
    })
    try {
      const r = await buildProgram(dir, { env: { HMAC_TEST_SECRET: 'abc' }, store: memoryStore() })
      const messages = (r.diagnostics ?? []).map((d) => `${d.code}: ${d.message}`)
      expect(messages).toHaveLength(3)
      expect(messages[0]).toContain('bad-component: "Content-Type": a header name is written in lower case')
      expect(messages[1]).toContain('bad-component: "@query-param": @query-param takes exactly one parameter')
      expect(messages[2]).toBe('bad-window: a signature window is at most 1d: the store keeps every nonce for the window')
    } finally {
      removeDir(dir)
    }
  })

  test('a secret whose window opens later is refused until then (buildProgram now)', async () => {
    const dir = policyDir({
      'p.policy': `
app a {
  key "ak_a"
  secret env OLD_SECRET
  secret env NEW_SECRET from 2031-01-01
}
match GET /signed { require hmac; respond 200 text "{app.name}" }
`,
    })
    try {
      let t = Date.parse('2030-12-31T23:59:00Z')
      const r = await buildProgram(dir, {
        env: { OLD_SECRET: 'old-secret-value', NEW_SECRET: 'new-secret-value' },
        now: () => t,
        store: memoryStore(),
      })
      const program = r.program!
      let n = 0
      const call = (key: string) => {
        const s = hmacSigned(
          key,
          [
            ['"@method"', 'GET'],
            ['"@target-uri"', 'http://gw.test/signed'],
          ],
          `;created=${Math.floor(t / 1000)};nonce="n${++n}";keyid="ak_a"`,
        )
        return program.fetch(
          new Request('http://gw.test/signed', { headers: { host: 'gw.test', 'signature-input': s.input, signature: s.signature } }),
        )
      }
      expect((await call('old-secret-value')).status).toBe(200)
      const early = await call('new-secret-value')
      expect(early.status).toBe(401)
      expect(early.headers.get('gateway-error')).toBe('unauthenticated')
      t = Date.parse('2031-01-01T00:00:01Z')
      const res = await call('new-secret-value')
      expect(res.status).toBe(200)
      expect(await res.text()).toBe('a')
      expect((await call('old-secret-value')).status).toBe(200)
    } finally {
      removeDir(dir)
    }
  })
})
