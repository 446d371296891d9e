// The payload keys and messages of `encrypt response`, `decrypt request` and `sign response`:
// HKDF known answers computed with two other tools (openssl kdf and python3's cryptography),
// key choice during a rotation, JWE round trips through jose's own decrypt and encrypt, the
// refusals of decryption, and a response signature checked by `http-message-signatures`.
import { describe, expect, test } from 'bun:test'
import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader } from 'jose'
import { httpbis } from 'http-message-signatures'
import type { RequestContext } from '../../src/runtime/context.ts'
import type { App, Credential } from '../../src/runtime/identity.ts'
import { algorithmFor, decryptDirect, encryptDirect, encryptTo, mediaTypeOf } from '../../src/runtime/payload/jwe.ts'
import { currentKey, deriveKey, newestSecret, validKeys, type KeyPurpose } from '../../src/runtime/payload/keys.ts'
import { signResponse } from '../../src/runtime/payload/response-signature.ts'

const utf8 = (s: string) => new TextEncoder().encode(s)
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

// Computed with
//   openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt key:partner-secret-0123456789 \
//     -kdfopt salt: -kdfopt info:"portcullis response v1 ak_partner_a" HKDF
// and python3: HKDF(hashes.SHA256(), 32, salt=None, info=…).derive(b'partner-secret-0123456789')
// (both give the same bytes; an empty salt is the RFC 5869 default of zeros).
const VECTORS: [KeyPurpose, string, string, string][] = [
  ['response', 'partner-secret-0123456789', 'ak_partner_a', '99b61f9a55cb3b537a16d518a4726951a6a98d7c633a22b4fe5a5c466096ec7f'],
  ['request', 'partner-secret-0123456789', 'ak_partner_a', '7c23a021544ae6c27bf90a83f96ce2e8620ffe3ee53e23582906cac3d0513541'],
  ['response-signature', 'partner-secret-0123456789', 'ak_partner_a', '655628a3a4ed2f99a01368887c94d16e3467442dde17e4abd58ed57cf25786e1'],
  // A secret outside ASCII is taken as its UTF-8 bytes (openssl: -kdfopt hexkey:$(printf … | xxd -p)).
  ['response', 'sécret-ünïcode-🔑', 'ak_ü', '790da346dc00cccea23e85f8e04f6da61d5c1a65e5266f08c6c515fc78d29acd'],
]

const cred = (value: string, from: number | null = null, until: number | null = null): Credential => ({ value: utf8(value), from, until })

function app(secrets: Credential[], over: Partial<App> = {}): App {
  return {
    name: 'partner_a',
    source: 'file',
    key: 'ak_partner_a',
    secrets,
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

describe('key derivation (HKDF-SHA256, empty salt, 32 bytes)', () => {
  test.each(VECTORS)('%s key of %p for %p', (purpose, secret, keyId, expected) => {
    expect(hex(deriveKey(utf8(secret), purpose, keyId))).toBe(expected)
  })

  test('the newest secret valid now signs and encrypts; every valid one decrypts, newest first', () => {
    const now = Date.parse('2030-01-01T00:00:00Z')
    const old = cred('old-secret', null, Date.parse('2030-06-01T00:00:00Z'))
    const next = cred('next-secret', Date.parse('2029-12-01T00:00:00Z'))
    const later = cred('later-secret', Date.parse('2031-01-01T00:00:00Z'))
    const expired = cred('expired-secret', null, Date.parse('2029-01-01T00:00:00Z'))
    const a = app([old, next, later, expired])
    expect(newestSecret(a, now)).toBe(next)
    expect(hex(currentKey(a, 'response', now)!)).toBe(hex(deriveKey(utf8('next-secret'), 'response', 'ak_partner_a')))
    expect(validKeys(a, 'request', now).map(hex)).toEqual([next, old].map((c) => hex(deriveKey(c.value, 'request', 'ak_partner_a'))))
    // Before the rotation the old secret is the only one; after `later` opens, it wins.
    expect(newestSecret(a, Date.parse('2029-06-01T00:00:00Z'))).toBe(old)
    expect(newestSecret(a, Date.parse('2031-02-01T00:00:00Z'))).toBe(later)
    // Two secrets open from the start: the one declared last.
    const b = app([cred('first'), cred('second')])
    expect(newestSecret(b, now)!.value).toEqual(utf8('second'))
  })

  test('a key is derived once per secret and purpose (the same bytes object comes back)', () => {
    const a = app([cred('cached-secret')])
    const k1 = currentKey(a, 'response', Date.now())
    expect(currentKey(a, 'response', Date.now())).toBe(k1!)
    expect(currentKey(a, 'request', Date.now())).not.toBe(k1!)
  })

  test('no key id or no valid secret: no key', () => {
    expect(currentKey(app([cred('s')], { key: null }), 'response', Date.now())).toBeNull()
    expect(currentKey(app([cred('s', null, 1)]), 'response', Date.now())).toBeNull()
    expect(validKeys(app([], {}), 'request', Date.now())).toEqual([])
  })
})

describe('compact JWE', () => {
  const key = deriveKey(utf8('partner-secret-0123456789'), 'request', 'ak_partner_a')
  const other = deriveKey(utf8('another-secret'), 'request', 'ak_partner_a')
  const body = utf8(JSON.stringify({ hello: 'wörld', n: [1, 2, 3] }))

  test('dir + A256GCM: header, round trip through jose, and through decryptDirect', async () => {
    const jwe = await encryptDirect(body, key, 'ak_partner_a', 'application/json')
    expect(decodeProtectedHeader(jwe)).toEqual({ alg: 'dir', enc: 'A256GCM', kid: 'ak_partner_a', cty: 'application/json' })
    expect((await compactDecrypt(jwe, key)).plaintext).toEqual(body)
    expect(await decryptDirect(jwe, [key], 'ak_partner_a')).toEqual({ plaintext: body, cty: 'application/json' })
    const bare = await encryptDirect(body, key, 'ak_partner_a', null)
    expect(decodeProtectedHeader(bare).cty).toBeUndefined()
    expect(await decryptDirect(bare, [key], 'ak_partner_a')).toEqual({ plaintext: body, cty: null })
  })

  test('a message made by jose for the request key, without kid, decrypts; every valid key is tried', async () => {
    const jwe = await new CompactEncrypt(body).setProtectedHeader({ alg: 'dir', enc: 'A256GCM', cty: 'json' }).encrypt(key)
    const r = await decryptDirect(jwe, [other, key], 'ak_partner_a')
    expect(r).toEqual({ plaintext: body, cty: 'json' })
    expect(mediaTypeOf('json')).toBe('application/json')
    expect(mediaTypeOf('text/plain; charset=utf-8')).toBe('text/plain; charset=utf-8')
  })

  test('refusals: wrong key, tampered, truncated, not a JWE, wrong alg or enc, foreign kid, zip', async () => {
    const jwe = await encryptDirect(body, key, 'ak_partner_a', 'application/json')
    const problem = async (text: string, keys = [key]) => {
      const r = await decryptDirect(text, keys, 'ak_partner_a')
      expect('problem' in r).toBe(true)
      return (r as { problem: string }).problem
    }
    expect(await problem(jwe, [other])).toContain('does not decrypt')
    const parts = jwe.split('.')
    const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1)
    expect(await problem([parts[0], parts[1], parts[2], flip(parts[3]!), parts[4]].join('.'))).toContain('does not decrypt')
    expect(await problem([parts[0], parts[1], parts[2], parts[3], flip(parts[4]!)].join('.'))).toContain('does not decrypt')
    expect(await problem(jwe.slice(0, -5))).toContain('does not decrypt')
    expect(await problem(parts.slice(0, 4).join('.'))).toContain('not a compact JWE')
    expect(await problem('{"ciphertext":"…"}')).toContain('not a compact JWE')
    expect(await problem('')).toContain('not a compact JWE')
    const a128 = await new CompactEncrypt(body).setProtectedHeader({ alg: 'dir', enc: 'A128GCM' }).encrypt(key.slice(0, 16))
    expect(await problem(a128)).toContain('alg "dir" and enc "A256GCM"')
    const kw = await new CompactEncrypt(body).setProtectedHeader({ alg: 'A256KW', enc: 'A256GCM' }).encrypt(key)
    expect(await problem(kw)).toContain('alg "dir"')
    const foreign = await new CompactEncrypt(body).setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: 'ak_other' }).encrypt(key)
    expect(await problem(foreign)).toContain('kid')
    // A header saying zip: refused before any decryption is tried.
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
    expect(await problem([b64({ alg: 'dir', enc: 'A256GCM', zip: 'DEF' }), '', parts[2], parts[3], parts[4]].join('.'))).toContain('zip')
  })

  test('to a public key: RSA-OAEP-256 and ECDH-ES+A256KW (P-256, P-384, X25519), decrypted by jose', async () => {
    const pairs = [
      ['RSA-OAEP-256', generateKeyPairSync('rsa', { modulusLength: 2048 })],
      ['ECDH-ES+A256KW', generateKeyPairSync('ec', { namedCurve: 'P-256' })],
      ['ECDH-ES+A256KW', generateKeyPairSync('ec', { namedCurve: 'P-384' })],
      ['ECDH-ES+A256KW', generateKeyPairSync('x25519')],
    ] as const
    for (const [alg, pair] of pairs) {
      expect(algorithmFor(pair.publicKey)).toBe(alg)
      const jwe = await encryptTo(body, pair.publicKey, 'ak_partner_a', 'application/json')
      const r = await compactDecrypt(jwe, pair.privateKey)
      expect(r.plaintext).toEqual(body)
      expect(r.protectedHeader).toMatchObject({ alg, enc: 'A256GCM', kid: 'ak_partner_a', cty: 'application/json' })
    }
  })

  test('signing keys cannot be encrypted to', () => {
    expect(algorithmFor(generateKeyPairSync('ed25519').publicKey)).toBeNull()
    // Bun's crypto cannot make RSA-PSS or secp256k1 keys: described by their type and curve.
    expect(algorithmFor({ asymmetricKeyType: 'rsa-pss' } as KeyObject)).toBeNull()
    expect(algorithmFor({ asymmetricKeyType: 'ec', asymmetricKeyDetails: { namedCurve: 'secp256k1' } } as KeyObject)).toBeNull()
  })
})

describe('response signature', () => {
  const SECRET = 'partner-secret-0123456789'
  const key = deriveKey(utf8(SECRET), 'response-signature', 'ak_partner_a')
  const url = 'http://api.example.com/api/orders/7?x=1'

  // Just what signResponse reads of a request: the request as sent and the identity.
  function ctxOf(headers: Record<string, string>, signature?: { label: string; value: string }): RequestContext {
    return {
      req: new Request(url, { method: 'POST', headers }),
      method: 'POST',
      proto: 'http',
      trusted: false,
      hostHeader: 'api.example.com',
      identity: { app: app([cred(SECRET)]), user: null, jwt: null, via: 'hmac', signature },
    } as unknown as RequestContext
  }

  async function verified(h: Record<string, string>, status: number, headers: Record<string, string>, reqHeaders: Record<string, string>) {
    return httpbis.verifyMessage(
      {
        keyLookup: async () => ({
          id: 'ak_partner_a',
          algs: ['hmac-sha256'],
          verify: async (data: Buffer, sig: Buffer) => createHmac('sha256', key).update(data).digest().equals(sig),
        }),
      },
      { status, headers: { ...headers, ...h } },
      { method: 'POST', url, headers: reqHeaders },
    )
  }

  test('an unsigned request: status, type, digest, method and URI of the request; verifies independently', async () => {
    const body = utf8('{"ok":true}')
    const h = signResponse(ctxOf({}), 200, 'application/json', body, key, 'ak_partner_a', 1_900_000_000_000)
    expect(h['content-digest']).toBe(`sha-256=:${Buffer.from(new Bun.CryptoHasher('sha256').update(body).digest()).toString('base64')}:`)
    expect(h['signature-input']).toBe(
      'sig1=("@status" "content-type" "content-digest" "@method";req "@target-uri";req);created=1900000000;keyid="ak_partner_a";alg="hmac-sha256"',
    )
    const base = [
      '"@status": 200',
      '"content-type": application/json',
      `"content-digest": ${h['content-digest']}`,
      '"@method";req: POST',
      `"@target-uri";req: ${url}`,
      `"@signature-params": ${h['signature-input'].slice(5)}`,
    ].join('\n')
    expect(h.signature).toBe(`sig1=:${createHmac('sha256', key).update(base).digest('base64')}:`)
    const fresh = signResponse(ctxOf({}), 200, 'application/json', body, key, 'ak_partner_a', Date.now())
    expect(await verified(fresh, 200, { 'content-type': 'application/json' }, {})).toBe(true)
    expect(await verified(fresh, 201, { 'content-type': 'application/json' }, {})).toBe(false)
    expect(await verified(fresh, 200, { 'content-type': 'text/plain' }, {})).toBe(false)
  })

  test('a signed request: its signature is covered with ;req;key=<label>; no content type: not covered', async () => {
    const reqSig = 'req_b=:dGhlIHJlcXVlc3Qgc2lnbmF0dXJl:'
    const reqHeaders = { signature: reqSig, 'signature-input': 'req_b=("@method");created=1;keyid="ak_partner_a"' }
    const ctx = ctxOf(reqHeaders, { label: 'req_b', value: 'dGhlIHJlcXVlc3Qgc2lnbmF0dXJl' })
    const h = signResponse(ctx, 204, null, new Uint8Array(0), key, 'ak_partner_a', Date.now())
    expect(h['signature-input']).toStartWith('sig1=("@status" "content-digest" "@method";req "@target-uri";req "signature";req;key="req_b");')
    expect(await verified(h, 204, {}, reqHeaders)).toBe(true)
    expect(await verified(h, 204, {}, { ...reqHeaders, signature: 'req_b=:b3RoZXI=:' })).toBe(false)
  })
})
