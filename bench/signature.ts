// RFC 9421 HTTP Message Signatures with hmac-sha256, as a client of a `require hmac` route signs
// a bodiless request: the signature base of §2.5 over "@method", "@target-uri" and "@authority",
// with `created`, a fresh `nonce`, `keyid` and `alg`. Only what the bench sends; no parsing.
import { createHmac } from 'node:crypto'

export const LABEL = 'sig1'
const COVERED = ['@method', '@target-uri', '@authority'] as const

export interface SignedHeaders {
  'Signature-Input': string
  Signature: string
}

/** The parts of a request the signature covers. `url` is the request URL as the server sees it (http, Host authority). */
export interface Target {
  method: string
  url: URL
}

// §2.2.1–2.2.3. `URL.host` is already lower case and leaves out the scheme's default port.
function componentValue(id: (typeof COVERED)[number], t: Target): string {
  if (id === '@method') return t.method
  if (id === '@target-uri') return t.url.href
  return t.url.host
}

// §2.3: the serialised inner list of the covered components, then the parameters in order.
export function signatureParams(created: number, nonce: string, keyid: string): string {
  return `(${COVERED.map((id) => `"${id}"`).join(' ')});created=${created};nonce="${nonce}";keyid="${keyid}";alg="hmac-sha256"`
}

// §2.5: one `"id": value` line per covered component, then the `"@signature-params"` line,
// joined by LF with none after the last.
export function signatureBase(t: Target, params: string): string {
  const lines = COVERED.map((id) => `"${id}": ${componentValue(id, t)}`)
  lines.push(`"@signature-params": ${params}`)
  return lines.join('\n')
}

/** Signature-Input and Signature for `t`; `secret` is the app's shared secret (§3.3.3: its bytes are the HMAC key). */
export function signRequest(t: Target, secret: string, keyid: string, created: number, nonce: string): SignedHeaders {
  const params = signatureParams(created, nonce, keyid)
  const mac = createHmac('sha256', secret).update(signatureBase(t, params), 'latin1').digest('base64')
  return { 'Signature-Input': `${LABEL}=${params}`, Signature: `${LABEL}=:${mac}:` }
}
