// Callers: who a test (or `gateway explain --as`) says is calling, turned into the credentials the
// matched route asks for. `as: APP` presents that app's credential for each `require` line of the
// route (an RFC 9421 signature with its HMAC secret, its API key, its certificate, or a kit JWT
// naming its jwt-subject); `jwt`, `cert` and `apiKey` present one credential of their own.
import type { App } from '../runtime/identity.ts'
import { normalizePath, splitTarget } from '../runtime/normalize.ts'
import type { Program } from '../runtime/program.ts'
import type { ClientCert, Peer } from '../runtime/request.ts'
import { factsOf, type AuthFact, type ProgramFacts, type RouteFacts } from './facts.ts'
import { mintToken } from './jwt.ts'
import { signRequest } from './sign.ts'

export interface Caller {
  as?: string
  jwt?: { claims?: Record<string, unknown> }
  cert?: string
  apiKey?: string
}

function hostOf(req: Request): string {
  const h = (req.headers.get('host') ?? new URL(req.url).host).toLowerCase()
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1)
  const colon = h.indexOf(':')
  return colon === -1 ? h : h.slice(0, colon)
}

function routeOf(facts: ProgramFacts, req: Request): RouteFacts | null {
  const norm = normalizePath(splitTarget(req.url)[0])
  return norm ? facts.lookup(req.method, hostOf(req), norm.segments) : null
}

function appNamed(program: Program, name: string): App {
  const app = program.apps.byName(name)
  if (app === null || app === 'unavailable') {
    const { file, store } = program.apps.names()
    const known = [...file, ...store]
    throw new Error(`no app '${name}' in the policies${known.length ? ` (apps: ${known.join(', ')})` : ''}`)
  }
  return app
}

// Inside its rotation window (`from` … `until`), as the gateway judges it.
const validAt = (c: { from: number | null; until: number | null }, now: number) =>
  (c.from === null || now >= c.from) && (c.until === null || now < c.until)

const certOf = (sha256: string, app: string | null): ClientCert => ({
  sha256,
  authorized: true,
  reason: null,
  subject: app === null ? null : `CN=${app}`,
})

// What one method needs from the app, or why the app cannot use it (null: it can).
function unusable(m: AuthFact, app: App, facts: ProgramFacts, now: number): string | null {
  switch (m.method) {
    case 'hmac':
      if (app.key === null) return 'no key id (`key "…"`)'
      return app.secrets.some((s) => validAt(s, now)) ? null : 'no HMAC secret valid now'
    case 'key':
      return facts.apiKeys(app.name).some((k) => validAt(k, now)) ? null : 'no API key valid now'
    case 'mtls':
      return app.certs.size > 0 ? null : 'no certificate (`cert sha256 "…"`)'
    case 'jwt':
      if (app.jwtSubject === null) return 'no jwt-subject'
      return facts.testJwt ? null : 'the program was not built with the kit JWT key'
    case 'session':
      return 'an app has no login session'
  }
}

interface Pending {
  request: Request
  peer: Partial<Peer>
  body: Uint8Array | null
  sign: { keyid: string; secret: Uint8Array; covers: string[] } | null
}

function putApiKey(p: Pending, m: Extract<AuthFact, { method: 'key' }> | null, key: string): void {
  if (m !== null && 'query' in m) {
    const url = new URL(p.request.url)
    url.searchParams.set(m.query, key)
    p.request = new Request(url.href, { method: p.request.method, headers: p.request.headers, body: p.body })
    return
  }
  const headers = new Headers(p.request.headers)
  headers.set(m?.header ?? 'x-api-key', key)
  p.request = new Request(p.request.url, { method: p.request.method, headers, body: p.body })
}

async function putBearer(p: Pending, token: string): Promise<void> {
  const headers = new Headers(p.request.headers)
  headers.set('authorization', `Bearer ${token}`)
  p.request = new Request(p.request.url, { method: p.request.method, headers, body: p.body })
}

function jwtDefaults(route: RouteFacts | null): Record<string, unknown> {
  const m = route?.requires.flatMap((r) => r.methods).find((x) => x.method === 'jwt')
  if (!m || m.method !== 'jwt') return {}
  return { ...(m.issuer === null ? {} : { iss: m.issuer }), ...(m.audience === null ? {} : { aud: m.audience[0] }) }
}

async function present(p: Pending, m: AuthFact, app: App, facts: ProgramFacts, route: RouteFacts, now: number): Promise<void> {
  switch (m.method) {
    case 'hmac': {
      const secret = app.secrets.find((s) => validAt(s, now))!
      p.sign = { keyid: app.key!, secret: secret.value, covers: [...(p.sign?.covers ?? []), ...m.covers] }
      return
    }
    case 'key':
      return putApiKey(p, m, facts.apiKeys(app.name).find((k) => validAt(k, now))!.value)
    case 'mtls':
      p.peer.clientCert = certOf([...app.certs][0]!, app.name)
      return
    case 'jwt': {
      const claim = m.appClaim ?? 'sub'
      return putBearer(p, await mintToken({ [claim]: app.jwtSubject }, jwtDefaults(route), now))
    }
    case 'session':
      return
  }
}

// The request as `caller` would send it to `program` at `now` (ms), and what the connection
// shows (a client certificate). Throws an Error saying why when the caller cannot be presented
// (an unknown app, an app without the credential the route requires).
export async function identify(program: Program, req: Request, caller: Caller, now: number): Promise<{ request: Request; peer: Partial<Peer> }> {
  const facts = factsOf(program)
  if (!facts) throw new Error('this program was not built with `explain` (as the testing kit builds): its routes are unknown to the kit')
  const route = routeOf(facts, req)
  const body = req.body === null ? null : new Uint8Array(await req.arrayBuffer())
  const p: Pending = { request: new Request(req.url, { method: req.method, headers: req.headers, body }), peer: {}, body, sign: null }

  if (caller.as !== undefined) {
    const app = appNamed(program, caller.as)
    for (const r of route?.requires ?? []) {
      const usable = r.methods.find((m) => unusable(m, app, facts, now) === null)
      if (usable) await present(p, usable, app, facts, route!, now)
      else if (!r.guarded) {
        const why = r.methods.map((m) => `${m.method}: ${unusable(m, app, facts, now)}`).join('; ')
        throw new Error(
          `app '${app.name}' cannot call ${route!.route.id} (${route!.route.location}): it needs ${r.methods.map((m) => m.method).join(' or ')} credentials and the app has none usable now (${why})`,
        )
      }
    }
  }
  if (caller.cert !== undefined) {
    const hex = caller.cert.replace(/:/g, '').toLowerCase()
    if (/^[0-9a-f]{64}$/.test(hex)) p.peer.clientCert = certOf(hex, null)
    else {
      const app = appNamed(program, caller.cert)
      if (app.certs.size === 0) throw new Error(`app '${app.name}' has no certificate (\`cert sha256 "…"\`)`)
      p.peer.clientCert = certOf([...app.certs][0]!, app.name)
    }
  }
  if (caller.apiKey !== undefined) {
    const m = route?.requires.flatMap((r) => r.methods).find((x) => x.method === 'key') ?? null
    const found = program.apps.byName(caller.apiKey)
    let key = caller.apiKey
    if (found !== null && found !== 'unavailable') {
      const k = facts.apiKeys(found.name).find((x) => validAt(x, now)) ?? facts.apiKeys(found.name)[0]
      if (!k) throw new Error(`app '${found.name}' has no api-key in the policies`)
      key = k.value
    }
    putApiKey(p, m && m.method === 'key' ? m : null, key)
  }
  if (caller.jwt !== undefined) {
    if (!facts.testJwt) throw new Error('this program was not built with the kit JWT key (BuildOptions.testJwtKey): it cannot accept minted tokens')
    await putBearer(p, await mintToken(caller.jwt.claims ?? {}, jwtDefaults(route), now))
  }
  // A certificate is presented on a TLS connection.
  if (p.peer.clientCert) p.peer.tls = true
  if (p.sign) {
    const scheme = p.peer.tls ? 'https' : 'http'
    p.request = signRequest(p.request, p.body, { ...p.sign, created: Math.floor(now / 1000), scheme })
  }
  return { request: p.request, peer: p.peer }
}
