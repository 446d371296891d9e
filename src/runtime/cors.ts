// CORS at request time (the Fetch standard's CORS protocol): which origins a route's `cors`
// allows, its answer to a preflight, and the headers it puts on every other answer. Everything
// is decided from data the directive precomputed; nothing here parses the policy.
import type { RequestContext } from './context.ts'
import { GatewayError } from './gateway-error.ts'

export interface OriginSpec {
  any: boolean // `*`: every origin but `null`
  exact: readonly string[] // `scheme://host[:port]`, lower case, default port left out
  wildcards: readonly { scheme: string; suffix: string; port: string }[] // suffix `.example.com`
  allowNull: boolean // `null` was listed
}

export interface CorsSpec {
  origins: OriginSpec
  methods: readonly string[] | '*' | null // null: the route's own methods
  headers: readonly string[] | '*' // request headers a preflight may ask for; [] none
  expose: readonly string[] | '*'
  credentials: boolean
  maxAgeSeconds: number | null
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
// A serialised origin as browsers send it (after lower-casing): scheme, host, optional port.
const ORIGIN = /^(https?):\/\/([a-z0-9_.-]+|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/
const DEFAULT_PORT: Record<string, string> = { http: '80', https: '443' }
// Methods a browser never needs allowed (CORS-safelisted).
const SAFELISTED = new Set(['GET', 'HEAD', 'POST'])
// The CORS answer headers: on a route with `cors` only the gateway sets them.
const OWNED = [
  'access-control-allow-origin',
  'access-control-allow-credentials',
  'access-control-allow-methods',
  'access-control-allow-headers',
  'access-control-expose-headers',
  'access-control-max-age',
  'access-control-allow-private-network',
]
const PREFLIGHT_VARY = 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers'

// The method a CORS preflight asks about (OPTIONS with Origin and a well-formed
// Access-Control-Request-Method), or null when the request is no preflight.
export function preflightMethod(req: Request): string | null {
  if (req.method !== 'OPTIONS') return null
  const asked = req.headers.get('access-control-request-method')
  if (asked === null || !req.headers.has('origin')) return null
  const m = asked.trim()
  return TOKEN.test(m) ? m : null
}

// Adds a name to Vary, keeping what the answer varies on already.
export function addVary(headers: Headers, name: string): void {
  const v = headers.get('vary')
  if (v === null || v.trim() === '') return void headers.set('vary', name)
  const names = v.split(',').map((s) => s.trim().toLowerCase())
  if (names.includes('*') || names.includes(name.toLowerCase())) return
  headers.set('vary', `${v}, ${name}`)
}

export class CorsPolicy {
  private readonly exact: ReadonlySet<string>
  private readonly star: boolean // the answer says `*` rather than the origin
  private readonly methods: { list: string; set: ReadonlySet<string> } | '*' | null
  private readonly headers: { list: string | null; set: ReadonlySet<string> } | '*'
  private readonly expose: string | null
  private readonly maxAge: string | null
  // The route's own methods as Access-Control-Allow-Methods, made at the first preflight.
  private readonly routeMethods = new WeakMap<object, { list: string; set: ReadonlySet<string> } | '*'>()

  constructor(private readonly spec: CorsSpec) {
    this.exact = new Set(spec.origins.exact)
    this.star = spec.origins.any && !spec.credentials
    const m = spec.methods
    this.methods = m === '*' || m === null ? m : { list: m.join(', '), set: new Set(m) }
    const h = spec.headers
    this.headers = h === '*' ? '*' : { list: h.length ? h.join(', ') : null, set: new Set(h.map((n) => n.toLowerCase())) }
    this.expose = spec.expose === '*' ? '*' : spec.expose.length ? spec.expose.join(', ') : null
    this.maxAge = spec.maxAgeSeconds === null ? null : String(spec.maxAgeSeconds)
    Object.freeze(this)
  }

  allows(origin: string): boolean {
    if (origin === 'null') return this.spec.origins.allowNull
    if (this.spec.origins.any) return true
    const m = ORIGIN.exec(origin.toLowerCase())
    if (!m) return false
    const [, scheme, host, given] = m as unknown as [string, string, string, string | undefined]
    const port = given === undefined || String(Number(given)) === DEFAULT_PORT[scheme] ? '' : String(Number(given))
    if (this.exact.has(port ? `${scheme}://${host}:${port}` : `${scheme}://${host}`)) return true
    for (const w of this.spec.origins.wildcards) {
      if (w.scheme === scheme && w.port === port && host.length > w.suffix.length && host.endsWith(w.suffix)) return true
    }
    return false
  }

  // A preflight: 204 with what the route allows, or a 403 naming what it does not allow.
  preflight(ctx: RequestContext): Response | GatewayError {
    const origin = ctx.req.headers.get('origin')!
    if (!this.allows(origin)) return refused(`the origin ${JSON.stringify(origin)} is not allowed by this route's cors`)
    const method = preflightMethod(ctx.req)!
    const methods = this.methods ?? this.methodsOf(ctx.route.methods)
    if (methods !== '*' && !methods.set.has(method) && !SAFELISTED.has(method))
      return refused(`the method ${method} is not allowed by this route's cors`)
    const asked = askedHeaders(ctx.req.headers.get('access-control-request-headers'))
    if (asked === null) return new GatewayError('bad_request', 'Access-Control-Request-Headers is not a list of header names')
    const allowed = this.headers
    if (allowed !== '*') {
      const missing = asked.find((n) => !allowed.set.has(n))
      if (missing !== undefined) return refused(`the request header ${missing} is not allowed by this route's cors`)
    }
    const out = new Headers({ vary: PREFLIGHT_VARY })
    out.set('access-control-allow-origin', this.star ? '*' : origin)
    if (this.spec.credentials) out.set('access-control-allow-credentials', 'true')
    out.set('access-control-allow-methods', methods === '*' ? method : methods.list)
    // `headers *` allows what was asked (a literal `*` would not cover Authorization, nor
    // anything on a credentialed request).
    const list = allowed === '*' ? asked.join(', ') : allowed.list
    if (list) out.set('access-control-allow-headers', list)
    if (this.maxAge !== null) out.set('access-control-max-age', this.maxAge)
    return new Response(null, { status: 204, headers: out })
  }

  // Every other answer of the route, gateway errors included: the gateway's CORS headers
  // replace any the answer carried (an upstream's own), and Vary names Origin.
  answer(ctx: RequestContext, headers: Headers): void {
    if (ctx.method === 'OPTIONS' && preflightMethod(ctx.req) !== null) return // preflight() made it
    for (const n of OWNED) headers.delete(n)
    addVary(headers, 'Origin')
    const origin = ctx.req.headers.get('origin')
    if (origin === null || !this.allows(origin)) return
    headers.set('access-control-allow-origin', this.star ? '*' : origin)
    if (this.spec.credentials) headers.set('access-control-allow-credentials', 'true')
    if (this.expose !== null) headers.set('access-control-expose-headers', this.expose)
  }

  private methodsOf(route: readonly string[] | null): { list: string; set: ReadonlySet<string> } | '*' {
    if (route === null) return '*'
    let m = this.routeMethods.get(route)
    if (!m) this.routeMethods.set(route, (m = { list: route.join(', '), set: new Set(route) }))
    return m
  }
}

function refused(detail: string): GatewayError {
  return new GatewayError('forbidden', detail)
}

// Access-Control-Request-Headers as lower-case names (browsers send them so); null when malformed.
function askedHeaders(value: string | null): string[] | null {
  if (value === null) return []
  const out: string[] = []
  for (const part of value.split(',')) {
    const n = part.trim().toLowerCase()
    if (n === '') continue
    if (!TOKEN.test(n)) return null
    out.push(n)
  }
  return out
}
