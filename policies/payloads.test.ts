// payloads.policy: `encrypt response`, `decrypt request` and `sign response`. The test is the
// partner: it derives partner_hmac's keys from the demo secret (HKDF-SHA256, docs/payloads.md),
// decrypts answers and encrypts requests with jose, verifies response signatures, and decrypts
// partner_enc's documents with its demo private key.
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { hkdfSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader, importPKCS8 } from 'jose'
import { loadGateway, type KitResponse, type UpstreamHandler } from 'portcullis/testing'
import { verifyResponse } from '../docs/payloads.ts'

// The orders mock echoes the path and the body it got.
const echo: UpstreamHandler = async (req) => Response.json({ order: new URL(req.url).pathname, got: req.method === 'POST' ? await req.text() : null })
const gw = await loadGateway(import.meta.dir, {
  upstreams: { orders: echo, users: () => Response.json({ document: 'contract', pages: 3 }) },
})
afterAll(() => gw.close())
const orders = gw.upstream('orders')
beforeEach(() => {
  orders.clear()
  orders.respond(echo)
})

const demo = (name: string) => readFileSync(join(import.meta.dir, 'demo-secrets', name), 'utf8')
const SECRET = demo('partner_hmac.secret').trim()
const KEY_ID = 'ak_partner_hmac'
const derive = (purpose: 'response' | 'request' | 'response-signature', keyId = KEY_ID) =>
  new Uint8Array(hkdfSync('sha256', SECRET, new Uint8Array(0), `portcullis ${purpose} v1 ${keyId}`, 32))

async function decrypt(r: KitResponse | string, key: Uint8Array | CryptoKey) {
  const { plaintext, protectedHeader } = await compactDecrypt(typeof r === 'string' ? r : await r.text(), key)
  return { json: JSON.parse(new TextDecoder().decode(plaintext)), header: protectedHeader }
}

// What verifyResponse needs of the answer and of the request that was signed.
async function signatureProblem(r: KitResponse, method: string, url: string, requestSignature: string | null) {
  const body = new Uint8Array(await r.response.clone().arrayBuffer())
  return verifyResponse(
    { status: r.status, headers: r.headers, body },
    { method, url, signature: requestSignature ?? undefined },
    derive('response-signature'),
    KEY_ID,
  )
}

describe('GET /api/v1/partners/statements/{id:int} (require hmac, encrypt response, sign response)', () => {
  test('the answer is a JWE only the partner reads, signed for its request', async () => {
    const request = await gw.prepare('GET /api/v1/partners/statements/7', { as: 'partner_hmac' })
    const r = await gw.send(request)
    expect(r.status, r.explain()).toBe(200)
    expect(r.headers.get('content-type')).toBe('application/jose')
    expect(orders.last!.path).toBe('/orders/7')
    expect(await signatureProblem(r, 'GET', request.url, request.headers.get('signature'))).toBeNull()
    expect(r.headers.get('signature-input')).toContain('"signature";req;key="sig1"')
    const { json, header } = await decrypt(r, derive('response'))
    expect(header).toMatchObject({ alg: 'dir', enc: 'A256GCM', kid: KEY_ID })
    expect(header.cty).toStartWith('application/json')
    expect(json).toEqual({ order: '/orders/7', got: null })
  })

  test('another key does not open it', async () => {
    const r = await gw.request('GET /api/v1/partners/statements/7', { as: 'partner_hmac' })
    await expect(decrypt(r, derive('response', 'ak_partner_a'))).rejects.toThrow()
  })

  test('a changed answer fails the signature check', async () => {
    const request = await gw.prepare('GET /api/v1/partners/statements/7', { as: 'partner_hmac' })
    const r = await gw.send(request)
    const forged = { ...r, status: 201 }
    expect(await signatureProblem(forged, 'GET', request.url, request.headers.get('signature'))).toBe('the signature does not verify')
  })

  test('unsigned: 401, a plain gateway error (not encrypted)', async () => {
    const r = await gw.request('GET /api/v1/partners/statements/7')
    expect(r.status, r.explain()).toBe(401)
    expect(r.headers.get('content-type')).toBe('application/problem+json')
    expect(orders.requests).toHaveLength(0)
  })
})

describe('POST /api/v1/partners/payments (decrypt request, encrypt response, sign response)', () => {
  const encrypted = (plaintext: string, key = derive('request'), header: Record<string, string> = {}) =>
    new CompactEncrypt(new TextEncoder().encode(plaintext))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: KEY_ID, cty: 'application/json', ...header })
      .encrypt(key)
  const jose = { 'Content-Type': 'application/jose' }

  test('the upstream gets the plaintext as the cty type; the partner gets the answer encrypted, signed, no-store', async () => {
    const payment = '{"amount":"12.50","currency":"EUR"}'
    const request = await gw.prepare('POST /api/v1/partners/payments', { as: 'partner_hmac', headers: jose, body: await encrypted(payment) })
    const r = await gw.send(request)
    expect(r.status, r.explain()).toBe(200)
    expect(orders.last).toMatchObject({ method: 'POST', path: '/orders', body: payment })
    expect(orders.last!.headers['content-type']).toBe('application/json')
    expect(r.headers.get('cache-control')).toBe('no-store')
    expect(r.headers.get('content-type')).toBe('application/jose')
    expect(await signatureProblem(r, 'POST', request.url, request.headers.get('signature'))).toBeNull()
    const { json } = await decrypt(r, derive('response'))
    expect(json).toEqual({ order: '/orders', got: payment })
  })

  test('a plain JSON body is 400 bad_request and never reaches the upstream', async () => {
    const r = await gw.request('POST /api/v1/partners/payments', { as: 'partner_hmac', body: { amount: '12.50' } })
    expect(r.status, r.explain()).toBe(400)
    expect(r.headers.get('gateway-error')).toBe('bad_request')
    expect(orders.requests).toHaveLength(0)
  })

  test('a JWE made with another key, or naming another kid, is 400', async () => {
    for (const body of [
      await encrypted('{}', derive('request', 'ak_partner_a')),
      await encrypted('{}', derive('request'), { kid: 'ak_partner_a' }),
    ]) {
      const r = await gw.request('POST /api/v1/partners/payments', { as: 'partner_hmac', headers: jose, body })
      expect(r.status, r.explain()).toBe(400)
      // The detail never shows the body.
      expect(await r.text()).not.toContain(body.slice(0, 20))
    }
    expect(orders.requests).toHaveLength(0)
  })

  test('the body is limited to 64kb (413), signature and all', async () => {
    const r = await gw.request('POST /api/v1/partners/payments', { as: 'partner_hmac', headers: jose, body: await encrypted('x'.repeat(64 * 1024)) })
    expect(r.status, r.explain()).toBe(413)
  })

  test('an answer over 1mb is a 502 bad_gateway: nothing of it reaches the partner', async () => {
    orders.respond(() => new Response('x'.repeat(1024 * 1024 + 1), { headers: { 'content-type': 'text/plain' } }))
    const r = await gw.request('POST /api/v1/partners/payments', { as: 'partner_hmac', headers: jose, body: await encrypted('{}') })
    expect(r.status, r.explain()).toBe(502)
    expect(r.headers.get('gateway-error')).toBe('bad_gateway')
    expect(await r.text()).not.toContain('xxxx')
  })

  test('signed within 60s only', async () => {
    gw.clock.set(Math.ceil(gw.clock.now() / 1000) * 1000)
    const request = await gw.prepare('POST /api/v1/partners/payments', { as: 'partner_hmac', headers: jose, body: await encrypted('{}') })
    gw.clock.advance('61s')
    const r = await gw.send(request)
    expect(r.status, r.explain()).toBe(401)
  })
})

describe('GET /api/v1/partners/documents/{id:int} (encrypt response to app.public-key)', () => {
  test("partner_enc's answer opens with its private key (ECDH-ES+A256KW)", async () => {
    const r = await gw.request('GET /api/v1/partners/documents/7', { as: 'partner_enc' })
    expect(r.status, r.explain()).toBe(200)
    expect(gw.upstream('users').last!.path).toBe('/partners/documents/7')
    const jwe = await r.text()
    expect(decodeProtectedHeader(jwe)).toMatchObject({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' })
    const { json } = await decrypt(jwe, await importPKCS8(demo('partner_enc.private.pem'), 'ECDH-ES+A256KW'))
    expect(json).toEqual({ document: 'contract', pages: 3 })
  })

  test('the demo API key of partner_enc from the README works', async () => {
    const r = await gw.request('GET /api/v1/partners/documents/7', { headers: { 'X-Api-Key': 'demo-api-key-partner-enc-0123456789' } })
    expect(r.status, r.explain()).toBe(200)
  })

  test('other partners: 403 forbidden', async () => {
    const r = await gw.request('GET /api/v1/partners/documents/7', { as: 'partner_a' })
    expect(r.status, r.explain()).toBe(403)
    expect(r.trace.steps.find((s) => s.outcome === 'refused')?.directive).toBe('allow app')
  })
})
