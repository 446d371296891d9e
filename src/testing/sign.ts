// RFC 9421 request signing with hmac-sha256, as a partner signs for a `require hmac` route. The
// signature base is made by the gateway's own verifier code (runtime/signatures/), so what the
// kit signs is exactly what the gateway checks.
import { createHmac, randomUUID } from 'node:crypto'
import { parseItem, serializeDictionary, type InnerList, type Parameters } from 'structured-headers'
import { componentOfText, normalAuthority, Underivable, type Component, type SignedRequest } from '../runtime/signatures/components.ts'
import { contentDigestOf } from '../runtime/signatures/content-digest.ts'
import { signatureBase } from '../runtime/signatures/verify.ts'

const LABEL = 'sig1'

export interface SignOptions {
  keyid: string
  secret: Uint8Array
  created: number // seconds since the epoch
  covers: readonly string[] // the route's `covers` (header names, derived components)
  scheme: 'http' | 'https'
}

// The request with Content-Digest (when it has a body), Signature-Input and Signature set.
// `body` is the request's body, already read.
export function signRequest(req: Request, body: Uint8Array | null, o: SignOptions): Request {
  const headers = new Headers(req.headers)
  const texts = ['@method', '@target-uri', '@authority']
  if (body !== null) {
    if (!headers.has('content-digest')) headers.set('content-digest', contentDigestOf(body))
    texts.push('content-digest')
  }
  for (const c of o.covers) if (!texts.includes(c)) texts.push(c)
  const components: Component[] = texts.map((t) => {
    const c = componentOfText(t)
    if (typeof c === 'string') throw new Error(`cannot sign: ${c}`)
    return c
  })
  const params: Parameters = new Map<string, string | number>([
    ['created', o.created],
    ['nonce', randomUUID()],
    ['keyid', o.keyid],
    ['alg', 'hmac-sha256'],
  ])
  const input: InnerList = [components.map((c) => parseItem(c.id)), params]
  const url = new URL(req.url)
  const signed: SignedRequest = {
    method: req.method,
    scheme: o.scheme,
    authority: normalAuthority(headers.get('host') ?? url.host, o.scheme),
    target: `${url.pathname}${url.search}`,
    header: (name) => headers.get(name),
  }
  const base = signatureBase(components, input, signed)
  if (base instanceof Underivable) throw new Error(`cannot sign for this route: ${base.reason} (set it in the request's headers or query)`)
  const mac = createHmac('sha256', o.secret).update(Buffer.from(base, 'latin1')).digest('base64')
  headers.set('signature-input', serializeDictionary(new Map([[LABEL, input]])))
  headers.set('signature', `${LABEL}=:${mac}:`)
  return new Request(req.url, { method: req.method, headers, body })
}
