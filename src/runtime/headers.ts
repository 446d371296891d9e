// Header hygiene: hop-by-hop headers both ways, and identity headers a client may not send.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
])

export const HOP_BY_HOP_NAMES: ReadonlySet<string> = HOP_BY_HOP

export function isHopByHop(lowerName: string): boolean {
  return HOP_BY_HOP.has(lowerName)
}

// The longest header name a cache keeps (clients pick names; real ones are short).
export const MAX_KEPT_NAME = 64

// `X_Consumer`, `x.consumer` and `X-Consumer` are one header to many upstream frameworks.
// Header names repeat from request to request: remember a bounded number of them.
const canonicalCache = new Map<string, string>()
export function canonicalName(name: string): string {
  let c = canonicalCache.get(name)
  if (c === undefined) {
    c = name.toLowerCase().replace(/[_.]/g, '-')
    if (canonicalCache.size < 4096 && name.length <= MAX_KEPT_NAME) canonicalCache.set(name, c)
  }
  return c
}

const IDENTITY_EXACT = new Set([
  'x-consumer',
  'x-credential-identifier',
  'x-anonymous-consumer',
  'x-user-json',
  'x-forwarded-client-cert',
  'gateway-error',
])
const IDENTITY_PREFIXES = ['x-consumer-', 'x-client-cert']

export function isIdentityHeader(canonical: string): boolean {
  return IDENTITY_EXACT.has(canonical) || IDENTITY_PREFIXES.some((p) => canonical.startsWith(p))
}

// Header values built from templates may not smuggle new lines or control characters, and
// a header carries bytes: characters beyond Latin-1 travel percent-encoded as UTF-8.
const UNSAFE = /[^\t\x20-\x7e\x80-\xff]/
export function safeHeaderValue(v: string): string {
  if (!UNSAFE.test(v)) return v
  return v.replace(/[\x00-\x08\x0a-\x1f\x7f]+/g, ' ').replace(/[^\x00-\xff]/gu, (c) => encodeURIComponent(c))
}
