// Signs an HTTP request for a Portcullis `require hmac` route: RFC 9421 HTTP Message Signatures
// (hmac-sha256 with the app's secret, or ed25519 with its private key) and an RFC 9530
// Content-Digest of the body. WebCrypto only: Node 20+, Bun, Deno and browsers; no dependencies.

export interface SigningKey {
  keyid: string // the app's `key`
  secret?: string // hmac-sha256: the app's secret
  ed25519Pkcs8?: Uint8Array // ed25519: the private key, PKCS#8 DER (the gateway has the public key)
}

const b64 = (bytes: ArrayBuffer | Uint8Array) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
const utf8 = (s: string) => new TextEncoder().encode(s)

// The headers to add to the request: Content-Digest (with a body), Signature-Input, Signature.
export async function signRequest(
  method: string,
  url: string,
  key: SigningKey,
  body?: string | Uint8Array,
  contentType?: string,
): Promise<Record<string, string>> {
  const u = new URL(url)
  const headers: Record<string, string> = {}
  // Signed: the method, the whole URL and the host; with a body, its digest and type too.
  const lines: [string, string][] = [
    ['@method', method.toUpperCase()],
    ['@target-uri', u.href],
    ['@authority', u.host],
  ]
  if (body !== undefined) {
    const bytes = typeof body === 'string' ? utf8(body) : new Uint8Array(body)
    headers['content-digest'] = `sha-256=:${b64(await crypto.subtle.digest('SHA-256', bytes))}:`
    lines.push(['content-digest', headers['content-digest']])
    if (contentType) lines.push(['content-type', (headers['content-type'] = contentType)])
  }
  const alg = key.secret !== undefined ? 'hmac-sha256' : 'ed25519'
  const created = Math.floor(Date.now() / 1000)
  const nonce = b64(crypto.getRandomValues(new Uint8Array(16)))
  const params = `(${lines.map(([name]) => `"${name}"`).join(' ')});created=${created};nonce="${nonce}";keyid="${key.keyid}";alg="${alg}"`
  const base = `${lines.map(([name, value]) => `"${name}": ${value}\n`).join('')}"@signature-params": ${params}`

  let signature: ArrayBuffer
  if (key.secret !== undefined) {
    const k = await crypto.subtle.importKey('raw', utf8(key.secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
    signature = await crypto.subtle.sign('HMAC', k, utf8(base))
  } else {
    const k = await crypto.subtle.importKey('pkcs8', new Uint8Array(key.ed25519Pkcs8!), { name: 'Ed25519' }, false, ['sign'])
    signature = await crypto.subtle.sign('Ed25519', k, utf8(base))
  }
  headers['signature-input'] = `sig1=${params}`
  headers['signature'] = `sig1=:${b64(signature)}:`
  return headers
}

// Example: node --experimental-strip-types sign-request.ts (or bun sign-request.ts)
//   const url = 'http://127.0.0.1:8080/api/v1/partners/orders'
//   const body = JSON.stringify({ sku: 'A-1', qty: 2 })
//   const signed = await signRequest('POST', url, { keyid: 'ak_partner_hmac', secret: process.env.SECRET! }, body, 'application/json')
//   const res = await fetch(url, { method: 'POST', headers: signed, body })
