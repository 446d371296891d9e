// `encrypt response`, `decrypt request` and `sign response` through the real gateway, checked
// with implementations that share no code with it: node-jose decrypts the answers (dir + A256GCM,
// RSA-OAEP-256, ECDH-ES+A256KW) and encrypts the request bodies, `http-message-signatures`
// verifies the response signatures, and the keys are derived with WebCrypto (docs/payloads.ts).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { generateKeyPairSync } from 'node:crypto'
import { join } from 'node:path'
import { compactDecrypt, importPKCS8 } from 'jose'
import jose from 'node-jose'
import { httpbis } from 'http-message-signatures'
import * as recipe from '../../docs/payloads.ts'
import { deriveKey, type Purpose } from '../../docs/payloads.ts'
import { signRequest } from '../../docs/sign-request.ts'
import { buildProgram, renderDiagnostics } from '../../src/index.ts'
import { echoOf, policyDir, removeDir, ROOT, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem, type Echo } from '../helpers/http.ts'

const ENV = {
  PAY_SECRET: 'payload-e2e-secret-0123456789',
  PAY_KEY: 'pay-api-key-0123456789',
  RSA_KEY: 'rsa-api-key-0123456789',
  EC_KEY: 'ec-api-key-0123456789',
  ED_KEY: 'ed-api-key-0123456789',
  NS_KEY: 'nosecret-api-key-0123456789',
  ROT_OLD: 'rotation-old-secret-0123456789',
  ROT_NEW: 'rotation-new-secret-0123456789',
  ROT_KEY: 'rot-api-key-0123456789',
}
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const ed = generateKeyPairSync('ed25519')
const pem = (k: typeof rsa.publicKey) => k.export({ type: 'spki', format: 'pem' }) as string

const utf8 = (s: string) => new TextEncoder().encode(s)
// Never appears anywhere but inside encrypted bodies: the logs must not show it.
const MARKER = 'plaintext-marker-7d1f0c'

let upstream: Upstream
let gw: RunningGateway
let dir: string
const hits: Echo[] = []

async function answer(req: Request): Promise<Response> {
  const e = await echoOf(req)
  hits.push(e)
  const last = new URL(req.url).pathname.split('/').pop()
  if (last === 'csv') return new Response(`a,b\n1,${MARKER}\n`, { headers: { 'content-type': 'text/csv; charset=utf-8' } })
  if (last === 'none') return new Response(null, { status: 204 })
  if (last === 'big') return new Response('x'.repeat(Number(new URL(req.url).searchParams.get('n'))), { headers: { 'content-type': 'text/plain' } })
  if (last === 'gzip') return new Response(Bun.gzipSync(utf8(MARKER)), { headers: { 'content-encoding': 'gzip', 'content-type': 'text/plain' } })
  return Response.json({ ...e, marker: MARKER })
}

const policy = () => `
upstream up { target ${upstream.url} }

app partner_p { key "ak_p"; secret env PAY_SECRET; api-key env PAY_KEY }
app partner_rsa { key "ak_rsa"; api-key env RSA_KEY; public-key file "rsa.pem" }
app partner_ec { key "ak_ec"; api-key env EC_KEY; public-key file "ec.pem" }
app partner_ed { key "ak_ed"; api-key env ED_KEY; public-key file "ed.pem" }
app partner_nosecret { key "ak_ns"; api-key env NS_KEY }
app partner_rot {
  key "ak_rot"
  api-key env ROT_KEY
  secret env ROT_OLD
  secret env ROT_NEW from 2020-01-01
}

match GET,HEAD /enc/{rest*} {
  require key
  proxy up
  encrypt response
}
match GET /enc-empty {
  require key
  respond 200
  encrypt response
}
match GET /capped/{rest*} {
  require key
  proxy up
  encrypt response max 1kb
}
match GET /to-key/{rest*} {
  require key
  proxy up
  encrypt response to app.public-key
}
match POST /dec {
  require key
  decrypt request
  proxy up
}
match POST /dec-limited {
  limit body 512b
  require key
  decrypt request
  proxy up
}
match GET,POST,HEAD /signed/{rest*} {
  require hmac
  proxy up
  sign response
}
match GET /signed-key/{rest*} {
  require key
  proxy up
  sign response
}
match POST /both {
  require hmac
  decrypt request
  proxy up
  encrypt response
  set response header X-Extra = "1"
  sign response
}
`

beforeAll(async () => {
  upstream = startUpstream(answer)
  dir = policyDir({ 'routes.policy': policy(), 'rsa.pem': pem(rsa.publicKey), 'ec.pem': pem(ec.publicKey), 'ed.pem': pem(ed.publicKey) })
  gw = await startGateway(dir, [], ENV)
})

afterAll(async () => {
  await gw?.stop()
  upstream?.stop()
  removeDir(dir)
})

const keyOf = (secret: string, keyId: string, purpose: Purpose) => deriveKey(secret, keyId, purpose)
const octKey = async (bytes: Uint8Array) => jose.JWK.asKey({ kty: 'oct', k: Buffer.from(bytes).toString('base64url') })

// node-jose's decryption of a compact JWE.
async function openJwe(jwe: string, key: jose.JWK.Key): Promise<{ text: string; header: Record<string, unknown> }> {
  const r = await jose.JWE.createDecrypt(key).decrypt(jwe)
  return { text: r.plaintext.toString('utf8'), header: r.header as Record<string, unknown> }
}

// node-jose adds a `kid` of its own unless the key is given with `reference: false` (its
// typings lack that form).
const noKid = (key: jose.JWK.Key) => ({ key, reference: false }) as unknown as jose.JWK.Key

// node-jose's encryption: dir + ENC with `key`, or whatever `fields` say.
async function sealJwe(text: string, key: jose.JWK.Key, fields: Record<string, unknown> = {}, enc = 'A256GCM'): Promise<string> {
  return (await jose.JWE.createEncrypt({ format: 'compact', contentAlg: enc, fields: { alg: 'dir', ...fields } }, noKid(key))
    .update(Buffer.from(text))
    .final()) as unknown as string
}

const reached = async (f: () => Promise<Response>) => {
  const before = hits.length
  const res = await f()
  return { res, reached: hits.length > before, echo: hits[hits.length - 1] }
}

describe('encrypt response', () => {
  test('dir + A256GCM: application/jose, kid and cty in the protected header, node-jose decrypts it', async () => {
    const { res, echo } = await reached(() => gw.fetch('/enc/orders/7', { headers: { 'x-api-key': ENV.PAY_KEY, 'accept-encoding': 'gzip, br' } }))
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/jose')
    const jwe = await res.text()
    expect(res.headers.get('content-length')).toBe(String(jwe.length))
    expect(jwe).not.toContain(MARKER)
    const { text, header } = await openJwe(jwe, await octKey(await keyOf(ENV.PAY_SECRET, 'ak_p', 'response')))
    expect(header).toEqual({ alg: 'dir', enc: 'A256GCM', kid: 'ak_p', cty: 'application/json;charset=utf-8' })
    expect(JSON.parse(text)).toMatchObject({ path: '/enc/orders/7', marker: MARKER })
    // The upstream was asked for the plain representation.
    expect(echo!.headers['accept-encoding']).toBeUndefined()
    // The access log counts the bytes delivered.
    const line = await gw.waitFor('stdout', /"path":"\/enc\/orders\/7"/)
    expect(JSON.parse(line).bytes_out).toBe(jwe.length)
  })

  test('the upstream content type becomes cty; an empty answer without a type (respond 200): no cty', async () => {
    const key = await octKey(await keyOf(ENV.PAY_SECRET, 'ak_p', 'response'))
    const csv = await gw.fetch('/enc/csv', { headers: { 'x-api-key': ENV.PAY_KEY } })
    const opened = await openJwe(await csv.text(), key)
    expect(opened.header.cty).toBe('text/csv; charset=utf-8')
    expect(opened.text).toBe(`a,b\n1,${MARKER}\n`)
    const untyped = await gw.fetch('/enc-empty', { headers: { 'x-api-key': ENV.PAY_KEY } })
    expect(untyped.headers.get('content-type')).toBe('application/jose')
    const bare = await openJwe(await untyped.text(), key)
    expect(bare.header.cty).toBeUndefined()
    expect(bare.text).toBe('')
  })

  test('a secret rotation: the newest valid secret encrypts', async () => {
    const res = await gw.fetch('/enc/x', { headers: { 'x-api-key': ENV.ROT_KEY } })
    const jwe = await res.text()
    const { text } = await openJwe(jwe, await octKey(await keyOf(ENV.ROT_NEW, 'ak_rot', 'response')))
    expect(JSON.parse(text).path).toBe('/enc/x')
    await expect(openJwe(jwe, await octKey(await keyOf(ENV.ROT_OLD, 'ak_rot', 'response')))).rejects.toThrow()
  })

  test('no body (204, HEAD) is left as it is; HEAD gets the type a GET would', async () => {
    const none = await gw.fetch('/enc/none', { headers: { 'x-api-key': ENV.PAY_KEY } })
    expect(none.status).toBe(204)
    expect(await none.text()).toBe('')
    const head = await gw.fetch('/enc/orders/7', { method: 'HEAD', headers: { 'x-api-key': ENV.PAY_KEY } })
    expect(head.status).toBe(200)
    expect(head.headers.get('content-type')).toBe('application/jose')
    expect(await head.text()).toBe('')
  })

  test('an answer over the cap is a 502 bad_gateway; up to the cap it is encrypted', async () => {
    const ok = await gw.fetch('/capped/big?n=1024', { headers: { 'x-api-key': ENV.PAY_KEY } })
    expect(ok.status).toBe(200)
    const { text } = await openJwe(await ok.text(), await octKey(await keyOf(ENV.PAY_SECRET, 'ak_p', 'response')))
    expect(text).toBe('x'.repeat(1024))
    const over = await gw.fetch('/capped/big?n=1025', { headers: { 'x-api-key': ENV.PAY_KEY } })
    const p = await expectProblem(over, 502, 'bad_gateway')
    expect(p.detail).toContain('1024 bytes')
  })

  test('a content-encoded answer is a 502: the partner could not be told its coding', async () => {
    const p = await expectProblem(await gw.fetch('/enc/gzip', { headers: { 'x-api-key': ENV.PAY_KEY } }), 502, 'bad_gateway')
    expect(p.detail).toContain('gzip')
  })

  test('to app.public-key: RSA-OAEP-256 and ECDH-ES+A256KW, decrypted by node-jose with the private key', async () => {
    for (const [apiKey, pair, alg, kid] of [
      [ENV.RSA_KEY, rsa, 'RSA-OAEP-256', 'ak_rsa'],
      [ENV.EC_KEY, ec, 'ECDH-ES+A256KW', 'ak_ec'],
    ] as const) {
      const res = await gw.fetch('/to-key/csv', { headers: { 'x-api-key': apiKey } })
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toBe('application/jose')
      const key = await jose.JWK.asKey(pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'pem')
      const { text, header } = await openJwe(await res.text(), key)
      expect(header).toMatchObject({ alg, enc: 'A256GCM', kid, cty: 'text/csv; charset=utf-8' })
      expect(text).toBe(`a,b\n1,${MARKER}\n`)
    }
  })

  test('an app that cannot get an encrypted answer is refused (403) before the upstream', async () => {
    for (const [path, apiKey, words] of [
      ['/to-key/x', ENV.ED_KEY, 'ed25519'],
      ['/to-key/x', ENV.PAY_KEY, 'has none'],
      ['/enc/x', ENV.NS_KEY, 'no secret'],
    ] as const) {
      const r = await reached(() => gw.fetch(path, { headers: { 'x-api-key': apiKey } }))
      const p = await expectProblem(r.res, 403, 'forbidden')
      expect(p.detail).toContain(words)
      expect(r.reached).toBe(false)
    }
  })
})

describe('decrypt request', () => {
  const post = (body: string | ReadableStream<Uint8Array>, headers: Record<string, string> = {}, path = '/dec') =>
    reached(() => gw.fetch(path, { method: 'POST', body, headers: { 'x-api-key': ENV.PAY_KEY, 'content-type': 'application/jose', ...headers } }))
  const requestKey = async () => octKey(await keyOf(ENV.PAY_SECRET, 'ak_p', 'request'))

  test('a body node-jose encrypted reaches the upstream as plaintext, typed by cty, with its own length', async () => {
    const plain = JSON.stringify({ order: 'A-1', note: `ünïcödé ${MARKER}` })
    const { res, reached: ok, echo } = await post(await sealJwe(plain, await requestKey(), { cty: 'application/json', kid: 'ak_p' }))
    expect(res.status).toBe(200)
    expect(ok).toBe(true)
    expect(echo!.body).toBe(plain)
    expect(echo!.headers['content-type']).toBe('application/json')
    expect(echo!.headers['content-length']).toBe(String(Buffer.byteLength(plain)))
  })

  test('a streamed (chunked) JWE body, a short cty, no cty', async () => {
    const key = await requestKey()
    const jwe = await sealJwe('a=1&b=2', key, { cty: 'x-www-form-urlencoded' })
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(utf8(jwe.slice(0, 20)))
        c.enqueue(utf8(jwe.slice(20)))
        c.close()
      },
    })
    const chunked = await post(stream)
    expect(chunked.res.status).toBe(200)
    expect(chunked.echo!.body).toBe('a=1&b=2')
    expect(chunked.echo!.headers['content-type']).toBe('application/x-www-form-urlencoded')
    const bare = await post(await sealJwe('raw bytes', key))
    expect(bare.echo!.body).toBe('raw bytes')
    expect(bare.echo!.headers['content-type']).toBeUndefined()
  })

  test('a secret rotation: either valid secret may have made the request', async () => {
    for (const secret of [ENV.ROT_OLD, ENV.ROT_NEW]) {
      const jwe = await sealJwe('rotated', await octKey(await keyOf(secret, 'ak_rot', 'request')))
      const r = await reached(() => gw.fetch('/dec', { method: 'POST', body: jwe, headers: { 'x-api-key': ENV.ROT_KEY } }))
      expect(r.res.status).toBe(200)
      expect(r.echo!.body).toBe('rotated')
    }
  })

  test('tampered, wrong key, truncated, wrong alg or enc, plaintext: 400 bad_request, upstream not reached', async () => {
    const key = await requestKey()
    const good = await sealJwe(MARKER, key, { cty: 'text/plain' })
    const parts = good.split('.')
    const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1)
    const bad: [string, string][] = [
      [[parts[0], parts[1], parts[2], flip(parts[3]!), parts[4]].join('.'), 'does not decrypt'],
      [[parts[0], parts[1], parts[2], parts[3], flip(parts[4]!)].join('.'), 'does not decrypt'],
      // The response key, another app's key: not this app's request key.
      [await sealJwe(MARKER, await octKey(await keyOf(ENV.PAY_SECRET, 'ak_p', 'response'))), 'does not decrypt'],
      [await sealJwe(MARKER, await octKey(await keyOf(ENV.ROT_OLD, 'ak_rot', 'request'))), 'does not decrypt'],
      [good.slice(0, good.length - 10), 'does not decrypt'],
      [parts.slice(0, 3).join('.'), 'not a compact JWE'],
      [await sealJwe(MARKER, await octKey((await keyOf(ENV.PAY_SECRET, 'ak_p', 'request')).slice(0, 16)), {}, 'A128GCM'), 'enc "A256GCM"'],
      [await sealJwe(MARKER, await jose.JWK.asKey(pem(rsa.publicKey), 'pem'), { alg: 'RSA-OAEP-256' }), 'alg "dir"'],
      [await sealJwe(MARKER, key, { kid: 'ak_rsa' }), 'kid'],
      [JSON.stringify({ marker: MARKER }), 'not a compact JWE'],
    ]
    for (const [body, words] of bad) {
      const r = await post(body)
      const p = await expectProblem(r.res, 400, 'bad_request')
      expect(p.detail).toContain(words)
      expect(p.detail).not.toContain(MARKER)
      expect(r.reached).toBe(false)
    }
    await gw.waitFor('stdout', /"path":"\/dec".*"status":400/)
    expect([...gw.stdout, ...gw.stderr].join('\n')).not.toContain(MARKER)
  })

  test('a body over `limit body` is a 413 before any decryption; no body passes as it is', async () => {
    const big = await sealJwe('y'.repeat(600), await requestKey())
    const r = await post(big, {}, '/dec-limited')
    await expectProblem(r.res, 413, 'payload_too_large')
    expect(r.reached).toBe(false)
    const empty = await post('')
    expect(empty.res.status).toBe(200)
    expect(empty.echo!.body).toBe('')
  })

  test('an app without a secret cannot send an encrypted body (403)', async () => {
    const r = await reached(() => gw.fetch('/dec', { method: 'POST', body: 'a.b.c.d.e', headers: { 'x-api-key': ENV.NS_KEY } }))
    await expectProblem(r.res, 403, 'forbidden')
    expect(r.reached).toBe(false)
  })
})

describe('sign response', () => {
  // `http-message-signatures` verifies the answer against the request as sent.
  async function verifies(res: Response, body: Uint8Array, request: { method: string; url: string; headers: Record<string, string> }) {
    const key = await keyOf(ENV.PAY_SECRET, 'ak_p', 'response-signature')
    const hmacKey = await crypto.subtle.importKey('raw', new Uint8Array(key), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify'])
    const digest = `sha-256=:${Buffer.from(await crypto.subtle.digest('SHA-256', new Uint8Array(body))).toString('base64')}:`
    expect(res.headers.get('content-digest')).toBe(digest)
    return httpbis.verifyMessage(
      {
        keyLookup: async (params) =>
          params.keyid === 'ak_p'
            ? {
                id: 'ak_p',
                algs: ['hmac-sha256'],
                verify: async (data: Buffer, sig: Buffer) => crypto.subtle.verify('HMAC', hmacKey, new Uint8Array(sig), new Uint8Array(data)),
              }
            : null,
        requiredFields: ['@status', 'content-digest', '@method', '@target-uri'],
        maxAge: 60,
      },
      { status: res.status, headers: Object.fromEntries(res.headers) },
      request,
    )
  }

  test('a signed request: the answer is signed over status, type, digest and the request, its signature included', async () => {
    const url = `${gw.url}/signed/orders/9?q=1`
    const headers = await signRequest('GET', url, { keyid: 'ak_p', secret: ENV.PAY_SECRET })
    const res = await fetch(url, { headers })
    expect(res.status).toBe(200)
    const body = new Uint8Array(await res.arrayBuffer())
    expect(res.headers.get('signature-input')).toMatch(
      /^sig1=\("@status" "content-type" "content-digest" "@method";req "@target-uri";req "signature";req;key="sig1"\);created=\d+;keyid="ak_p";alg="hmac-sha256"$/,
    )
    expect(await verifies(res, body, { method: 'GET', url, headers })).toBe(true)
    // Bound to that request: another request signature, method or URL does not verify.
    const other = await signRequest('GET', url, { keyid: 'ak_p', secret: ENV.PAY_SECRET })
    expect(await verifies(res, body, { method: 'GET', url, headers: other })).toBe(false)
    expect(await verifies(res, body, { method: 'POST', url, headers })).toBe(false)
    expect(await verifies(res, body, { method: 'GET', url: `${url}&q=2`, headers })).toBe(false)
  })

  test('a signed POST, and a HEAD (digest of the empty body delivered)', async () => {
    const url = `${gw.url}/signed/orders`
    const payload = JSON.stringify({ sku: 'A-1' })
    const headers = await signRequest('POST', url, { keyid: 'ak_p', secret: ENV.PAY_SECRET }, payload, 'application/json')
    const res = await fetch(url, { method: 'POST', headers, body: payload })
    const body = new Uint8Array(await res.arrayBuffer())
    expect(JSON.parse(new TextDecoder().decode(body)).body).toBe(payload)
    expect(await verifies(res, body, { method: 'POST', url, headers })).toBe(true)
    const headHeaders = await signRequest('HEAD', url, { keyid: 'ak_p', secret: ENV.PAY_SECRET })
    const head = await fetch(url, { method: 'HEAD', headers: headHeaders })
    expect(head.status).toBe(200)
    expect(await verifies(head, new Uint8Array(0), { method: 'HEAD', url, headers: headHeaders })).toBe(true)
  })

  test('an unsigned request (require key): no request signature to cover', async () => {
    const url = `${gw.url}/signed-key/csv`
    const res = await fetch(url, { headers: { 'x-api-key': ENV.PAY_KEY } })
    const body = new Uint8Array(await res.arrayBuffer())
    expect(res.headers.get('signature-input')).not.toContain('"signature";req')
    expect(await verifies(res, body, { method: 'GET', url, headers: { 'x-api-key': ENV.PAY_KEY } })).toBe(true)
  })

  test('decrypt request + encrypt response + sign response: the digest is over the encrypted body delivered', async () => {
    const url = `${gw.url}/both`
    const jwe = await sealJwe(JSON.stringify({ marker: MARKER }), await octKey(await keyOf(ENV.PAY_SECRET, 'ak_p', 'request')), {
      cty: 'application/json',
    })
    const headers = await signRequest('POST', url, { keyid: 'ak_p', secret: ENV.PAY_SECRET }, jwe, 'application/jose')
    const res = await fetch(url, { method: 'POST', headers, body: jwe })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/jose')
    expect(res.headers.get('x-extra')).toBe('1')
    const body = new Uint8Array(await res.arrayBuffer())
    expect(await verifies(res, body, { method: 'POST', url, headers })).toBe(true)
    const { text } = await openJwe(new TextDecoder().decode(body), await octKey(await keyOf(ENV.PAY_SECRET, 'ak_p', 'response')))
    const echo = JSON.parse(text) as Echo
    expect(JSON.parse(echo.body)).toEqual({ marker: MARKER })
    expect(echo.headers['content-type']).toBe('application/json')
    // The client's Content-Digest was of the JWE: the upstream does not get it.
    expect(echo.headers['content-digest']).toBeUndefined()
    expect(echo.headers['content-length']).toBe(String(Buffer.byteLength(echo.body)))
  })

  test('an app without a secret cannot get a signed answer (403 before the upstream)', async () => {
    const r = await reached(() => gw.fetch('/signed-key/x', { headers: { 'x-api-key': ENV.NS_KEY } }))
    await expectProblem(r.res, 403, 'forbidden')
    expect(r.reached).toBe(false)
  })
})

describe('checks', () => {
  async function diagnostics(routes: string): Promise<string> {
    const d = policyDir({
      'p.policy': `upstream up { target http://127.0.0.1:9 }\napp a { key "ak_a"; secret env S; api-key env K }\n${routes}`,
    })
    try {
      const built = await buildProgram(d, { env: { S: 'secret-value-0123456789', K: 'api-key-0123456789' } })
      return built.diagnostics ? renderDiagnostics(built.diagnostics) : ''
    } finally {
      removeDir(d)
    }
  }

  test('each needs a route that identifies the app', async () => {
    const out = await diagnostics('match POST /x {\n  decrypt request\n  proxy up\n  encrypt response\n  sign response\n}\n')
    for (const name of ['decrypt request', 'encrypt response', 'sign response'])
      expect(out).toContain(`error: '${name}' needs a route that identifies the app; the route POST /x identifies none`)
    expect(await diagnostics('match POST /x {\n  require key\n  decrypt request\n  proxy up\n  encrypt response\n  sign response\n}\n')).toBe('')
  })

  test('sign response comes after the directives that change the answer', async () => {
    const out = await diagnostics(
      'match GET /x {\n  require key\n  proxy up\n  sign response\n  encrypt response\n  set response header X-A = "1"\n}\n',
    )
    expect(out).toContain("p.policy:7:3: error: 'encrypt response' must come before 'sign response'")
    expect(out).toContain("p.policy:8:3: error: 'set response header' must come before 'sign response'")
  })

  test('options: to app.public-key only, max SIZE, nothing else; route only', async () => {
    const out = await diagnostics(
      'match GET /x {\n  require key\n  proxy up\n  encrypt response to app.secret\n}\nmatch GET /y {\n  require key\n  proxy up\n  sign response max 10\n}\ndefaults {\n  encrypt response\n}\n',
    )
    expect(out).toContain("p.policy:6:23: error: 'encrypt response to' takes app.public-key, found 'app.secret'")
    expect(out).toContain('p.policy:11:21: error: a size needs a unit')
    expect(out).toContain("p.policy:14:3: error: 'encrypt response' cannot be used in defaults")
  })
})

// Each python3 run imports `cryptography` (about a second on a busy machine): longer timeouts.
describe('partner recipes (docs/payloads.md): docs/payloads.ts, docs/payloads.py, openssl', () => {
  const PY = join(ROOT, 'docs/payloads.py')
  async function run(cmd: string[], stdin?: string, env: Record<string, string> = {}) {
    const proc = Bun.spawn(cmd, {
      cwd: ROOT,
      stdin: stdin === undefined ? 'ignore' : new Blob([stdin]),
      stdout: 'pipe',
      stderr: 'pipe',
      env: { ...process.env, PORTCULLIS_SECRET: ENV.PAY_SECRET, ...env },
    })
    const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000)
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
    clearTimeout(timer)
    return { out, err, code }
  }

  test('the keys: TypeScript (WebCrypto), python3 (cryptography) and openssl kdf agree', async () => {
    const py = await run(['python3', PY, 'derive', 'ak_p'])
    expect(py.code).toBe(0)
    for (const purpose of ['response', 'request', 'response-signature'] as const) {
      const hex = Buffer.from(await recipe.deriveKey(ENV.PAY_SECRET, 'ak_p', purpose)).toString('hex')
      expect(py.out).toContain(`${purpose} ${hex}\n`)
      const ossl = await run([
        'openssl',
        'kdf',
        '-keylen',
        '32',
        '-kdfopt',
        'digest:SHA256',
        '-kdfopt',
        `key:${ENV.PAY_SECRET}`,
        '-kdfopt',
        'salt:',
        '-kdfopt',
        `info:portcullis ${purpose} v1 ak_p`,
        'HKDF',
      ])
      expect(ossl.out.trim().replaceAll(':', '').toLowerCase()).toBe(hex)
    }
  }, 30_000)

  test('TypeScript: decrypt a response, encrypt a request, verify a response signature', async () => {
    const res = await gw.fetch('/enc/csv', { headers: { 'x-api-key': ENV.PAY_KEY } })
    const opened = await recipe.decryptResponse(await res.text(), await recipe.deriveKey(ENV.PAY_SECRET, 'ak_p', 'response'))
    expect(opened.contentType).toBe('text/csv; charset=utf-8')
    expect(new TextDecoder().decode(opened.plaintext)).toBe(`a,b\n1,${MARKER}\n`)

    const jwe = await recipe.encryptRequest('{"sku":"A-1"}', await recipe.deriveKey(ENV.PAY_SECRET, 'ak_p', 'request'), 'ak_p', 'application/json')
    const sent = await reached(() =>
      gw.fetch('/dec', { method: 'POST', body: jwe, headers: { 'x-api-key': ENV.PAY_KEY, 'content-type': 'application/jose' } }),
    )
    expect(sent.echo!.body).toBe('{"sku":"A-1"}')
    expect(sent.echo!.headers['content-type']).toBe('application/json')

    const url = `${gw.url}/both`
    const headers = await signRequest('POST', url, { keyid: 'ak_p', secret: ENV.PAY_SECRET }, jwe, 'application/jose')
    const both = await fetch(url, { method: 'POST', headers, body: jwe })
    const body = new Uint8Array(await both.arrayBuffer())
    const sigKey = await recipe.deriveKey(ENV.PAY_SECRET, 'ak_p', 'response-signature')
    const req = { method: 'POST', url, signature: headers.signature }
    expect(await recipe.verifyResponse({ status: both.status, headers: both.headers, body }, req, sigKey, 'ak_p')).toBeNull()
    expect(await recipe.verifyResponse({ status: both.status, headers: both.headers, body: body.slice(1) }, req, sigKey, 'ak_p')).toContain(
      'Content-Digest',
    )
    expect(await recipe.verifyResponse({ status: 201, headers: both.headers, body }, req, sigKey, 'ak_p')).toBe('the signature does not verify')
    expect(
      await recipe.verifyResponse({ status: both.status, headers: both.headers, body }, { ...req, signature: 'sig1=:AAAA:' }, sigKey, 'ak_p'),
    ).toBe('the signature does not verify')
    const inner = await recipe.decryptResponse(new TextDecoder().decode(body), await recipe.deriveKey(ENV.PAY_SECRET, 'ak_p', 'response'))
    expect(JSON.parse(new TextDecoder().decode(inner.plaintext)).body).toBe('{"sku":"A-1"}')
  }, 30_000)

  test('TypeScript with jose, for answers encrypted to app.public-key', async () => {
    const res = await gw.fetch('/to-key/csv', { headers: { 'x-api-key': ENV.EC_KEY } })
    // The recipe of docs/payloads.md: the private key as PEM, compactDecrypt.
    const privateKey = await importPKCS8(ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'ECDH-ES+A256KW')
    const { plaintext, protectedHeader } = await compactDecrypt(await res.text(), privateKey)
    expect(protectedHeader.cty).toBe('text/csv; charset=utf-8')
    expect(new TextDecoder().decode(plaintext)).toBe(`a,b\n1,${MARKER}\n`)
  }, 30_000)

  test('python3: decrypt (dir, RSA-OAEP-256, ECDH-ES+A256KW) and encrypt', async () => {
    const dirJwe = await (await gw.fetch('/enc/csv', { headers: { 'x-api-key': ENV.PAY_KEY } })).text()
    const d = await run(['python3', PY, 'decrypt', 'ak_p'], dirJwe)
    expect(d.err).toContain('content-type: text/csv; charset=utf-8')
    expect(d.out).toBe(`a,b\n1,${MARKER}\n`)
    const keyDir = policyDir({
      'rsa.pem': rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      'ec.pem': ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    })
    try {
      for (const [apiKey, file] of [
        [ENV.RSA_KEY, 'rsa.pem'],
        [ENV.EC_KEY, 'ec.pem'],
      ] as const) {
        const jwe = await (await gw.fetch('/to-key/x', { headers: { 'x-api-key': apiKey } })).text()
        const p = await run(['python3', PY, 'decrypt', '-', '--private-key', join(keyDir, file)], jwe)
        expect(p.code).toBe(0)
        expect(JSON.parse(p.out)).toMatchObject({ path: '/to-key/x', marker: MARKER })
      }
    } finally {
      removeDir(keyDir)
    }
    const e = await run(['python3', PY, 'encrypt', 'ak_p', 'application/json'], '{"from":"python"}')
    const sent = await reached(() =>
      gw.fetch('/dec', { method: 'POST', body: e.out, headers: { 'x-api-key': ENV.PAY_KEY, 'content-type': 'application/jose' } }),
    )
    expect(sent.res.status).toBe(200)
    expect(sent.echo!.body).toBe('{"from":"python"}')
    expect(sent.echo!.headers['content-type']).toBe('application/json')
  }, 30_000)

  test('curl + python3: verify a signed response of a signed request', async () => {
    const url = `${gw.url}/signed/orders/5`
    const headers = await signRequest('GET', url, { keyid: 'ak_p', secret: ENV.PAY_SECRET })
    const tmp = policyDir({})
    try {
      const [head, body] = [join(tmp, 'head.txt'), join(tmp, 'body.bin')]
      const curl = await run(['curl', '-s', '-D', head, '-o', body, ...Object.entries(headers).flatMap(([n, v]) => ['-H', `${n}: ${v}`]), url])
      expect(curl.code).toBe(0)
      const ok = await run(['python3', PY, 'verify', 'ak_p', 'GET', url, head, body, headers.signature!])
      expect(ok.out.trim()).toBe('ok')
      const other = await run(['python3', PY, 'verify', 'ak_p', 'GET', `${url}?x=1`, head, body, headers.signature!])
      expect(other.out.trim()).toBe('the signature does not verify')
      expect(other.code).toBe(1)
    } finally {
      removeDir(tmp)
    }
  }, 30_000)
})
