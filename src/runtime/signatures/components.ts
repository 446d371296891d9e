// RFC 9421 covered components: a component identifier (a name and its parameters, §2) and the
// value(s) it takes in the request as the client sent it — header fields (§2.1) and the derived
// components of §2.2 that a request has. Supported parameters: `;name` on @query-param, and
// `;key` / `;sf` on fields (`;sf` only for fields whose structured type the gateway knows).
// Refused: `;bs` (the separate field lines are joined before the gateway sees them), `;req`
// (responses only), `;tr` (trailers are never read).
import {
  isInnerList,
  parseDictionary,
  parseItem,
  parseList,
  serializeDictionary,
  serializeInnerList,
  serializeItem,
  serializeList,
  Token,
} from 'structured-headers'
import type { Item, Parameters } from 'structured-headers'
import type { RequestContext } from '../context.ts'

// The request as a signer saw it.
export interface SignedRequest {
  readonly method: string
  readonly scheme: string // http or https
  readonly authority: string // the Host header, lower case, without the scheme's default port
  readonly target: string // path and query as received (origin form), never rewritten
  header(name: string): string | null // field lines combined with ", "
}

const DEFAULT_PORT: Record<string, string> = { http: ':80', https: ':443' }

// §2.2.3: the authority is normalised as RFC 9110 §4.2.3 says: lower case, no default port.
export function normalAuthority(host: string, scheme: string): string {
  const h = host.toLowerCase()
  const port = DEFAULT_PORT[scheme]
  return port && h.endsWith(port) ? h.slice(0, -port.length) : h
}

// The request as received: before any rewrite, the target exactly as the client sent it (Bun
// has only resolved dot-segments). Behind a trusted proxy (--trust-proxy), X-Forwarded-Proto
// gives the scheme the client used.
export function signedRequestOf(ctx: RequestContext): SignedRequest {
  const headers = ctx.req.headers
  const xfp = ctx.trusted ? headers.get('x-forwarded-proto') : null
  const scheme = xfp === 'https' || xfp === 'http' ? xfp : ctx.proto
  const url = ctx.req.url
  const sep = url.indexOf('://')
  const start = sep === -1 ? 0 : url.indexOf('/', sep + 3)
  const hash = start === -1 ? -1 : url.indexOf('#', start)
  // In process (program.fetch) a Request may have no Host header: its URL names the host.
  const host = ctx.hostHeader || (sep === -1 ? '' : url.slice(sep + 3, start === -1 ? undefined : start))
  return {
    method: ctx.method,
    scheme,
    authority: normalAuthority(host, scheme),
    target: start === -1 ? '/' : hash === -1 ? url.slice(start) : url.slice(start, hash),
    header: (name) => headers.get(name),
  }
}

// Why a covered component has no value in this request.
export class Underivable {
  constructor(readonly reason: string) {}
}

export type Derived = string | string[] | Underivable

export interface Component {
  readonly name: string
  readonly id: string // the serialized identifier, as it starts its line of the signature base
  derive(r: SignedRequest): Derived
}

const pathOf = (target: string) => {
  const q = target.indexOf('?')
  return (q === -1 ? target : target.slice(0, q)) || '/'
}
const queryOf = (target: string) => {
  const q = target.indexOf('?')
  return q === -1 ? '?' : target.slice(q)
}

const derived: Record<string, (r: SignedRequest) => string> = {
  '@method': (r) => r.method,
  '@target-uri': (r) => `${r.scheme}://${r.authority}${r.target}`,
  '@authority': (r) => r.authority,
  '@scheme': (r) => r.scheme,
  '@request-target': (r) => r.target,
  '@path': (r) => pathOf(r.target),
  '@query': (r) => queryOf(r.target),
}
export const DERIVED_NAMES = [...Object.keys(derived), '@query-param']

// §2.2.8: names and values are form-decoded, then percent-encoded leaving only A-Z a-z 0-9 * - . _
export function encodeQueryPart(s: string): string {
  return encodeURIComponent(s).replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

function queryParam(name: string): (r: SignedRequest) => Derived {
  return function queryParamValue(r) {
    const q = r.target.indexOf('?')
    const values: string[] = []
    if (q !== -1) for (const [n, v] of new URLSearchParams(r.target.slice(q + 1))) if (encodeQueryPart(n) === name) values.push(encodeQueryPart(v))
    return values.length ? values : new Underivable(`the signed query parameter '${name}' is not in the request`)
  }
}

// Fields whose structured type is known, for `;sf` (RFC 8941 requires the type to be known).
const structuredType: Record<string, 'dictionary' | 'list'> = {
  'content-digest': 'dictionary',
  'repr-digest': 'dictionary',
  'want-content-digest': 'dictionary',
  'want-repr-digest': 'dictionary',
  signature: 'dictionary',
  'signature-input': 'dictionary',
  'accept-signature': 'dictionary',
  priority: 'dictionary',
  'cache-status': 'list',
  'proxy-status': 'list',
}

function field(name: string, key: string | null, sf: boolean): (r: SignedRequest) => Derived {
  const missing = new Underivable(`the signed header '${name}' is missing`)
  if (key === null && !sf)
    return function plainField(r) {
      return r.header(name) ?? missing
    }
  return function structuredField(r) {
    const v = r.header(name)
    if (v === null) return missing
    try {
      if (key !== null) {
        const member = parseDictionary(v).get(key)
        if (member === undefined) return new Underivable(`the signed header '${name}' has no member '${key}'`)
        return isInnerList(member) ? serializeInnerList(member) : serializeItem(member)
      }
      return structuredType[name] === 'list' ? serializeList(parseList(v)) : serializeDictionary(parseDictionary(v))
    } catch {
      return new Underivable(`the signed header '${name}' is not a valid structured field`)
    }
  }
}

const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/
const unsupported: Record<string, string> = {
  bs: 'the gateway receives field lines already joined, so it cannot rebuild ;bs',
  req: 'it binds a response to its request; this is a request',
  tr: 'trailers are not read',
}

// A component identifier → the component, or why it cannot be verified.
export function componentOf(item: Item): Component | string {
  const [name, params] = item
  if (typeof name !== 'string') return 'a covered component must be a quoted string'
  const id = serializeItem(item)
  for (const p of params.keys()) if (p in unsupported) return `${id}: the ;${p} parameter is not supported (${unsupported[p]})`
  if (name.startsWith('@')) {
    if (name === '@query-param') {
      const n = params.get('name')
      if (typeof n !== 'string' || params.size !== 1) return `${id}: @query-param takes exactly one parameter, ;name="…" (a quoted string)`
      return { name, id, derive: queryParam(n) }
    }
    const derive = derived[name]
    if (!derive) {
      if (name === '@signature-params') return '@signature-params cannot be covered'
      if (name === '@status') return '@status is a response component'
      return `unknown derived component ${id} (known: ${DERIVED_NAMES.join(', ')})`
    }
    if (params.size) return `${id}: ${name} takes no parameters`
    return { name, id, derive }
  }
  if (!FIELD_NAME.test(name)) return `${id}: a header name is written in lower case, with token characters only`
  let key: string | null = null
  let sf = false
  for (const [p, v] of params) {
    if (p === 'key' && typeof v === 'string') key = v
    else if (p === 'sf' && v === true) sf = true
    else return `${id}: unknown parameter ;${p} on a header (supported: ;key="…", ;sf)`
  }
  if (sf && key === null && !structuredType[name]) return `${id}: the gateway does not know the structured type of '${name}' (;sf)`
  return { name, id, derive: field(name, key, sf) }
}

// A component written in a policy (`covers "@query-param;name=id"`): tokens are taken as strings.
export function componentOfText(text: string): Component | string {
  const semi = text.indexOf(';')
  const name = semi === -1 ? text : text.slice(0, semi)
  let item: Item
  try {
    item = parseItem(`"${name.replace(/["\\]/g, '\\$&')}"${semi === -1 ? '' : text.slice(semi)}`)
  } catch {
    return `'${text}' is not a component identifier like "@method", "content-type" or "@query-param;name=id"`
  }
  const params: Parameters = new Map()
  for (const [k, v] of item[1]) params.set(k, v instanceof Token ? v.toString() : v)
  return componentOf([item[0], params])
}
