// The partner's side of Portcullis' payload protection (docs/payloads.md): derive the app's keys,
// decrypt an `encrypt response` answer, encrypt a body for `decrypt request`, and verify a
// `sign response` signature. WebCrypto only: Node 20+, Bun, Deno and browsers; no dependencies.
// (Answers encrypted `to app.public-key` are easiest with a JOSE library: see the .md.)

export type Purpose = 'response' | 'request' | 'response-signature'

const utf8 = (s: string) => new TextEncoder().encode(s)
function b64(bytes: ArrayBuffer | Uint8Array): string {
  const u8 = new Uint8Array(bytes)
  let s = ''
  for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000))
  return btoa(s)
}
const b64url = (bytes: ArrayBuffer | Uint8Array) => b64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
const unb64url = (s: string) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0))

// HKDF-SHA256: IKM = the app's secret (UTF-8), empty salt, info = "portcullis <purpose> v1 <key id>", 32 bytes.
export async function deriveKey(secret: string, keyId: string, purpose: Purpose): Promise<Uint8Array> {
  const ikm = await crypto.subtle.importKey('raw', utf8(secret), 'HKDF', false, ['deriveBits'])
  const info = utf8(`portcullis ${purpose} v1 ${keyId}`)
  return new Uint8Array(await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info }, ikm, 256))
}

// An `encrypt response` answer (application/jose): a compact JWE, dir + A256GCM with the response key.
export async function decryptResponse(jwe: string, responseKey: Uint8Array): Promise<{ plaintext: Uint8Array; contentType: string | null }> {
  const [protectedB64, encryptedKey, iv, ciphertext, tag] = jwe.trim().split('.')
  if (tag === undefined || encryptedKey !== '') throw new Error('not a compact dir JWE')
  const header = JSON.parse(new TextDecoder().decode(unb64url(protectedB64!))) as { alg: string; enc: string; cty?: string }
  if (header.alg !== 'dir' || header.enc !== 'A256GCM') throw new Error(`unexpected alg/enc ${header.alg}/${header.enc}`)
  const key = await crypto.subtle.importKey('raw', new Uint8Array(responseKey), 'AES-GCM', false, ['decrypt'])
  const body = unb64url(ciphertext!)
  const sealed = new Uint8Array(body.length + 16)
  sealed.set(body)
  sealed.set(unb64url(tag), body.length)
  // The additional authenticated data is the protected header exactly as received (RFC 7516 §5.2).
  const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: unb64url(iv!), additionalData: utf8(protectedB64!) }, key, sealed)
  return { plaintext: new Uint8Array(plain), contentType: header.cty ?? null }
}

// A request body for a `decrypt request` route: send it with Content-Type: application/jose.
export async function encryptRequest(plaintext: string | Uint8Array, requestKey: Uint8Array, keyId: string, contentType?: string): Promise<string> {
  const header = b64url(utf8(JSON.stringify({ alg: 'dir', enc: 'A256GCM', kid: keyId, ...(contentType ? { cty: contentType } : {}) })))
  const iv = crypto.getRandomValues(new Uint8Array(12))
  const key = await crypto.subtle.importKey('raw', new Uint8Array(requestKey), 'AES-GCM', false, ['encrypt'])
  const data = typeof plaintext === 'string' ? utf8(plaintext) : new Uint8Array(plaintext)
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: utf8(header) }, key, data))
  return `${header}..${b64url(iv)}.${b64url(sealed.slice(0, -16))}.${b64url(sealed.slice(-16))}`
}

export interface SentRequest {
  method: string
  url: string // as sent
  signature?: string // the Signature header the request carried, if it was signed (`require hmac`)
}

// Checks a `sign response` answer: the components the gateway promises are covered, the
// Content-Digest is that of the body received, `created` is recent, and the HMAC matches.
// Returns null when all is well, else what is wrong.
export async function verifyResponse(
  res: { status: number; headers: Headers; body: Uint8Array },
  req: SentRequest,
  signatureKey: Uint8Array,
  keyId: string,
  maxAgeSeconds = 300,
): Promise<string | null> {
  const input = /^sig1=(\(([^)]*)\)(.*))$/.exec(res.headers.get('signature-input') ?? '')
  const sig = /(?:^|,\s*)sig1=:([A-Za-z0-9+/=]*):/.exec(res.headers.get('signature') ?? '')
  if (!input || !sig) return 'no sig1 signature'
  const [, params, list, rest] = input
  if (!rest!.includes(`;keyid="${keyId}"`) || !rest!.includes(';alg="hmac-sha256"')) return 'wrong keyid or alg'
  const created = Number(/;created=(\d+)/.exec(rest!)?.[1])
  if (!(Math.abs(Date.now() / 1000 - created) <= maxAgeSeconds)) return 'created is missing or too old'

  const digest = `sha-256=:${b64(await crypto.subtle.digest('SHA-256', new Uint8Array(res.body)))}:`
  if (res.headers.get('content-digest') !== digest) return 'the body does not match Content-Digest'

  const ids = list!.split(' ').filter(Boolean)
  const required = ['"@status"', '"content-digest"', '"@method";req', '"@target-uri";req']
  if (res.headers.has('content-type')) required.push('"content-type"')
  const reqLabel = req.signature && /^([a-z*][a-z0-9_\-.*]*)=/.exec(req.signature)?.[1]
  if (reqLabel) required.push(`"signature";req;key="${reqLabel}"`)
  for (const id of required) if (!ids.includes(id)) return `the signature does not cover ${id}`

  const lines: string[] = []
  for (const id of ids) {
    const value =
      id === '"@status"'
        ? String(res.status)
        : id === '"@method";req'
          ? req.method.toUpperCase()
          : id === '"@target-uri";req'
            ? req.url
            : id === `"signature";req;key="${reqLabel}"`
              ? new RegExp(`(?:^|,\\s*)${reqLabel}=(:[^:]*:)`).exec(req.signature ?? '')?.[1]
              : /^"[a-z0-9-]+"$/.test(id)
                ? res.headers.get(id.slice(1, -1))
                : undefined
    if (value === undefined || value === null) return `cannot rebuild ${id}`
    lines.push(`${id}: ${value}`)
  }
  lines.push(`"@signature-params": ${params}`)
  const key = await crypto.subtle.importKey('raw', new Uint8Array(signatureKey), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify'])
  const ok = await crypto.subtle.verify(
    'HMAC',
    key,
    Uint8Array.from(atob(sig[1]!), (c) => c.charCodeAt(0)),
    utf8(lines.join('\n')),
  )
  return ok ? null : 'the signature does not verify'
}

// Example (bun docs/payloads.ts, or node --experimental-strip-types):
//   const secret = process.env.PARTNER_SECRET!, keyId = 'ak_partner_hmac'
//   const res = await fetch(url, { headers: { 'x-api-key': apiKey } })
//   const { plaintext, contentType } = await decryptResponse(await res.text(), await deriveKey(secret, keyId, 'response'))
