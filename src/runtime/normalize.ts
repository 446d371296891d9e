// Request path normalisation: percent-decode unreserved characters only, resolve
// dot-segments, merge duplicate slashes. `%2F` stays inside its segment.
const HEX = '0123456789ABCDEF'
const unreserved = /[A-Za-z0-9\-._~]/
// Characters a path segment may carry as they are (RFC 3986 pchar minus `%`).
const pchar = /[A-Za-z0-9\-._~!$&'()*+,;=:@]/

function normalizeSegment(seg: string): string | null {
  if (!seg.includes('%') && /^[A-Za-z0-9\-._~!$&'()*+,;=:@]*$/.test(seg)) return seg
  let out = ''
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i]!
    if (c === '%') {
      const h = seg.slice(i + 1, i + 3).toUpperCase()
      if (!/^[0-9A-F]{2}$/.test(h)) return null
      const ch = String.fromCharCode(parseInt(h, 16))
      out += unreserved.test(ch) ? ch : `%${h}`
      i += 2
    } else if (pchar.test(c)) {
      out += c
    } else {
      // Anything else (`\`, spaces, non-ASCII) is carried percent-encoded, byte by byte.
      for (const b of new TextEncoder().encode(c)) out += `%${HEX[b >> 4]}${HEX[b & 15]}`
    }
  }
  return out
}

export interface NormalPath {
  path: string // always starts with `/`
  segments: string[] // without the empty segment of a trailing slash
}

// null: the path is malformed (bad percent-encoding, NUL) and the request is a 400.
// Most paths are already normal: plain characters, no `%`, no `//`, no dot-segments.
const PLAIN = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/

export function normalizePath(raw: string): NormalPath | null {
  if (raw.charCodeAt(0) === 47 && !raw.includes('//') && !raw.includes('/.') && PLAIN.test(raw)) {
    const body = raw.endsWith('/') ? raw.slice(1, -1) : raw.slice(1)
    return { path: raw, segments: body === '' ? [] : body.split('/') }
  }
  if (raw.includes('\0')) return null
  const segments: string[] = []
  const parts = raw.split('/')
  const trailing = parts.length > 1 && parts[parts.length - 1] === ''
  for (const part of parts) {
    if (part === '') continue
    const seg = normalizeSegment(part)
    if (seg === null || seg.includes('%00')) return null
    if (seg === '.') continue
    if (seg === '..') {
      segments.pop()
      continue
    }
    segments.push(seg)
  }
  const last = parts[parts.length - 1]
  const endsInDot = last === '.' || last === '..' || last === '%2e' || last === '%2E'
  const path = `/${segments.join('/')}${(trailing || endsInDot) && segments.length > 0 ? '/' : ''}`
  return { path, segments }
}

// The normalised path alone (a rewritten one): no segments list for the common plain path.
export function normalizedPath(raw: string): string | null {
  if (raw.charCodeAt(0) === 47 && !raw.includes('//') && !raw.includes('/.') && PLAIN.test(raw)) return raw
  return normalizePath(raw)?.path ?? null
}

// Raw request target → [path, query]. Works on the string; never resolves it against a base.
export function splitTarget(url: string): [string, string] {
  let start = 0
  const scheme = url.indexOf('://')
  if (scheme !== -1 && scheme < 8) {
    start = url.indexOf('/', scheme + 3)
    if (start === -1) return ['/', '']
  }
  const q = url.indexOf('?', start)
  const hash = url.indexOf('#', start)
  const end = hash === -1 ? url.length : hash
  if (q === -1 || q > end) return [url.slice(start, end) || '/', '']
  return [url.slice(start, q) || '/', url.slice(q + 1, end)]
}
