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

export function isHopByHop(lowerName: string): boolean {
  return HOP_BY_HOP.has(lowerName)
}

// `X_Consumer`, `x.consumer` and `X-Consumer` are one header to many upstream frameworks.
// Header names repeat from request to request: remember a bounded number of them.
const canonicalCache = new Map<string, string>()
export function canonicalName(name: string): string {
  let c = canonicalCache.get(name)
  if (c === undefined) {
    c = name.toLowerCase().replace(/[_.]/g, '-')
    if (canonicalCache.size < 4096) canonicalCache.set(name, c)
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

function connectionTokens(headers: Headers): string[] {
  const c = headers.get('connection')
  return c
    ? c
        .split(',')
        .map((t) => t.trim().toLowerCase())
        .filter(Boolean)
    : []
}

// The request headers an upstream may see: no hop-by-hop, no identity or protected names.
export function upstreamRequestHeaders(incoming: Headers, protectedNames: ReadonlySet<string>): Headers {
  const out = new Headers(incoming)
  const named = connectionTokens(incoming)
  let doomed: string[] | null = null
  for (const name of incoming.keys()) {
    if (HOP_BY_HOP.has(name) || (named.length > 0 && named.includes(name))) (doomed ??= []).push(name)
    else {
      const canonical = canonicalName(name)
      if (isIdentityHeader(canonical) || protectedNames.has(canonical)) (doomed ??= []).push(name)
    }
  }
  if (doomed) for (const name of doomed) out.delete(name)
  return out
}

// The upstream's response headers as the client gets them, edited in place.
export function stripResponseHeaders(headers: Headers): Headers {
  const named = connectionTokens(headers)
  let doomed: string[] | null = null
  for (const name of headers.keys()) {
    if (HOP_BY_HOP.has(name) || name === 'gateway-error' || (named.length > 0 && named.includes(name))) (doomed ??= []).push(name)
  }
  if (doomed) for (const name of doomed) headers.delete(name)
  return headers
}

// Header values built from templates may not smuggle new lines or control characters, and
// a header carries bytes: characters beyond Latin-1 travel percent-encoded as UTF-8.
const UNSAFE = /[^\t\x20-\x7e\x80-\xff]/
export function safeHeaderValue(v: string): string {
  if (!UNSAFE.test(v)) return v
  return v.replace(/[\x00-\x08\x0a-\x1f\x7f]+/g, ' ').replace(/[^\x00-\xff]/gu, (c) => encodeURIComponent(c))
}
