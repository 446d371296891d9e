// Checked program → an OpenAPI 3.1 document of the routes clients can call (`gateway openapi`).
// Each route and method is one operation; its directives are walked in the order they run
// (src/compile/openapi-effects.ts says what each adds), so an answer is documented only where
// the route can give it, with the headers it would carry.
import { basename } from 'node:path'
import type { CheckedProgram, CheckedRoute, DirectiveUse } from '../check/check-program.ts'
import type { Guard, Test } from '../check/conditions.ts'
import type { Span } from '../policy/source.ts'
import { STAGES } from '../runtime/context.ts'
import { guardedName } from './conditions.ts'
import { Draft, EFFECTS, FIXED_HEADERS, Named, ref, type Json, type Part } from './openapi-effects.ts'

export interface OpenApiOptions {
  title?: string
  server?: string // the gateway's public base URL
  apiVersion?: string // info.version; default: a hash of the documented paths
}

export interface OpenApiResult {
  document: Json
  notes: string[] // what the document could not say (two routes for one operation)
}

// `match *` is documented with the methods most APIs use.
const COMMON_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']
// The methods a path item has fields for (not CONNECT).
const PATH_ITEM_METHODS = new Set(['GET', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'HEAD', 'PATCH', 'TRACE'])
const RATE_HEADERS = ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'RateLimit-Policy', 'RateLimit']

const lineOf = (s: Span) => s.file.text.slice(s.offset, s.offset + s.length).replace(/\s+/g, ' ')
const whereOf = (s: Span) => `${s.file.path}:${s.file.position(s.offset).line}`

// Whether a `when` guard holds for every request of one method: true, false, or undefined when
// it depends on more than the method.
function testHolds(t: Test, method: string): boolean | undefined {
  if (t.ref !== 'request.method') return undefined
  if (t.op === 'eq' || t.op === 'ne') return t.values.some((v) => v.text === method) === (t.op === 'eq')
  if (t.op === 'matches') return new RegExp(t.values[0]!.text).test(method)
  if (t.op === 'present' || t.op === 'absent') return t.op === 'present'
  return undefined
}

function guardHolds(g: Guard, method: string): boolean | undefined {
  let all: boolean | undefined = true
  for (const c of g.conditions) {
    const values = c.tests.map((t) => testHolds(t, method))
    const v =
      c.join === 'and'
        ? values.includes(false)
          ? false
          : values.includes(undefined)
            ? undefined
            : true
        : values.includes(true)
          ? true
          : values.includes(undefined)
            ? undefined
            : false
    if (v === false) return false
    if (v === undefined) all = undefined
  }
  return all
}

function draftOf(r: CheckedRoute, method: string, schemes: Named, headers: Named): Draft {
  const d = new Draft(method, schemes, headers)
  const run = (u: DirectiveUse): boolean | undefined => {
    const holds = u.guard ? guardHolds(u.guard, method) : true
    if (holds === false) return false
    d.when = holds === undefined ? u.guard!.text : null
    EFFECTS[u.def.name]?.(u.cfg as never, d, lineOf(u.statement))
    d.when = null
    return holds
  }
  for (const stage of STAGES) {
    const uses = r.uses.filter((u) => u.def.stage === stage)
    if (stage === 'response') {
      for (const u of uses) run(u) // its header steps run on every answer, gateway errors included
      continue
    }
    if (d.ended) continue
    if (uses.some((u) => u.def.terminal)) {
      // The terminals in the order they are tried: the guarded ones, then the route's own.
      const ordered = [...uses.filter((u) => u.guard), ...uses.filter((u) => !u.guard)]
      for (const u of ordered) if (run(u) === true) break
      continue
    }
    for (const u of uses) if ((run(u), d.ended)) break
    if (stage === 'access' && !d.ended) limitsOf(d)
  }
  return d
}

// The route's throttles and quotas, decided together after its access stage.
function limitsOf(d: Draft): void {
  const { throttle, quota, failure, lines } = d.limits
  if (!throttle && !quota) return
  const headers = Object.fromEntries([...RATE_HEADERS, 'Retry-After'].map((h) => [h, ref('headers', h)]))
  const over = lines.map((l) => `\`${l}\``).join(', ')
  if (throttle) d.error('rate_limited', `over a rate limit: ${over}`, headers)
  if (quota) d.error('quota_exceeded', `a quota is used up: ${over}`, headers)
  if ((failure ?? (quota ? 'deny' : 'allow')) === 'deny') d.error('store_unavailable', 'the store cannot decide the rate limits (they fail closed)')
  for (const h of RATE_HEADERS) d.headers.set(h, ref('headers', h))
  // Answers the access stage gave before the decision carry them too, as the counters stand.
  for (const p of d.parts) for (const h of RATE_HEADERS) p.headers.set(h, ref('headers', h))
  d.notes.push(`Rate limits: ${over}.`)
}

// Parts with one status → one response object.
function responsesOf(parts: Part[]): Json {
  const byStatus = new Map<string, Part[]>()
  for (const p of parts) byStatus.set(p.status, [...(byStatus.get(p.status) ?? []), p])
  const order = [...byStatus.keys()].sort((a, b) => (a === 'default' ? 1 : b === 'default' ? -1 : Number(a) - Number(b)))
  const out: Json = {}
  for (const status of order) {
    const group = byStatus.get(status)!
    const descriptions = [...new Set(group.map((p) => p.description))]
    const headers: Json = {}
    const content: Json = {}
    for (const p of group) for (const [n, h] of p.headers) headers[n] ??= h
    for (const p of group) for (const [t, m] of p.content) content[t] ??= m
    const codes = [...new Set(group.flatMap((p) => p.codes))]
    if (codes.length) headers['Gateway-Error'] = ref('headers', 'Gateway-Error')
    headers['X-Request-Id'] = ref('headers', 'X-Request-Id')
    out[status] = {
      description: descriptions.length === 1 ? descriptions[0] : descriptions.map((t) => `- ${t}`).join('\n'),
      headers,
      ...(Object.keys(content).length ? { content } : {}),
    }
  }
  return out
}

// Each `require` line is needed (AND); its alternatives are separate requirement objects (OR).
function securityOf(d: Draft, schemes: Named): Json[] | undefined {
  if (d.security.length === 0) return undefined
  let reqs: string[][] = [[]]
  for (const alternatives of d.security) reqs = reqs.flatMap((r) => alternatives.map((a) => [...new Set([...r, ...a])]))
  const isJwt = (n: string) => schemes.all.get(n)?.bearerFormat === 'JWT'
  // `require scope` and `require claim` refuse every caller without a verified token.
  const withJwt = reqs.filter((r) => r.some(isJwt))
  if (d.needsJwt && withJwt.length) reqs = withJwt
  const out = reqs.map((r) => Object.fromEntries(r.map((n) => [n, isJwt(n) ? [...new Set(d.scopes)] : []])))
  return [...new Map(out.map((o) => [JSON.stringify(o), o])).values()]
}

interface PathOf {
  template: string
  shape: string // the template with its parameter names left out: two equal shapes are one path
  params: { name: string; schema: Json; description?: string }[]
}

function pathOf(r: CheckedRoute): PathOf {
  const parts: string[] = []
  const shape: string[] = []
  const params: PathOf['params'] = []
  for (const s of r.pattern.segments) {
    if (s.kind === 'literal') {
      parts.push(s.value)
      shape.push(s.value)
      continue
    }
    parts.push(`{${s.name}}`)
    shape.push('{}')
    if (s.kind === 'param') params.push({ name: s.name, schema: { type: 'string' } })
    else if (s.kind === 'rest')
      params.push({
        name: s.name,
        schema: { type: 'string' },
        description: `The rest of the path (\`{${s.name}*}\`): any number of segments, slashes included, or none.`,
      })
    else if (s.type === 'int') params.push({ name: s.name, schema: { type: 'integer', minimum: 0 }, description: 'Digits only.' })
    else if (s.type === 'uuid') params.push({ name: s.name, schema: { type: 'string', format: 'uuid' } })
    else params.push({ name: s.name, schema: { type: 'string', pattern: `^(?:${s.type.slice(1, -1)})$` } })
  }
  return { template: `/${parts.join('/')}`, shape: `/${shape.join('/')}`, params }
}

function operationId(method: string, r: CheckedRoute, taken: Set<string>): string {
  const words = [method.toLowerCase()]
  for (const s of r.pattern.segments) words.push(s.kind === 'literal' ? s.value : `by ${s.name}`)
  if (r.host) words.push(`at ${r.host.replace('*', 'any')}`)
  const parts = words
    .join(' ')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
  const base = parts.map((w, i) => (i === 0 ? w : w[0]!.toUpperCase() + w.slice(1))).join('')
  let id = base
  for (let i = 2; taken.has(id); i++) id = `${base}_${i}`
  taken.add(id)
  return id
}

function serverFor(host: string, server: string | undefined): Json[] | undefined {
  if (host.startsWith('*.')) return undefined
  const base = server ? new URL(server) : null
  const path = base && base.pathname !== '/' ? base.pathname.replace(/\/$/, '') : ''
  return [{ url: `${base?.protocol ?? 'https:'}//${host}${base?.port ? `:${base.port}` : ''}${path}` }]
}

export function openapiDocument(program: CheckedProgram, opts: OpenApiOptions = {}): OpenApiResult {
  const schemes = new Named()
  const headers = new Named(FIXED_HEADERS)
  const paths = new Map<string, { template: string; item: Json }>()
  const operations = new Map<string, { op: Json; route: CheckedRoute }>()
  const ids = new Set<string>()
  const tags = new Set<string>()
  const notes: string[] = []
  for (const r of program.routes) {
    const methods = (r.methods ?? COMMON_METHODS).filter((m) => PATH_ITEM_METHODS.has(m))
    const p = pathOf(r)
    const path = paths.get(p.shape) ?? { template: p.template, item: {} }
    // One path, one set of names: the first route's names stand for every route of the shape.
    const names = [...path.template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!)
    for (const method of methods) {
      const key = `${method} ${p.shape}`
      const had = operations.get(key)
      if (had) {
        const also = ((had.op['x-portcullis-also'] as Json[] | undefined) ??= [])
        also.push({ route: r.id, location: whereOf(r.patternSpan), ...(r.host ? { host: r.host } : {}) })
        notes.push(
          `${whereOf(r.patternSpan)}: ${method} ${r.patternText}${r.host ? ` host ${r.host}` : ''} shares the operation ${method} ${path.template} with ${had.route.id} (${whereOf(had.route.patternSpan)}): only that one is documented`,
        )
        continue
      }
      const d = draftOf(r, method, schemes, headers)
      if (d.retired) continue
      const steps = r.uses.map((u) => guardedName(u.def.describe?.(u.cfg) ?? u.def.name, u.guard)).join(', ')
      const file = basename(r.patternSpan.file.path).replace(/\.policy$/, '')
      tags.add(file)
      const op: Json = {
        operationId: operationId(method, r, ids),
        summary: r.id,
        description: [
          ...new Set(d.notes),
          r.methods === null ? 'The route takes every method; the document lists the common ones.' : '',
          `Directives: ${steps}.`,
        ]
          .filter(Boolean)
          .join('\n\n'),
        tags: [file],
        ...(p.params.length
          ? {
              parameters: p.params.map((q, i) => ({
                name: names[i]!,
                in: 'path',
                required: true,
                ...(q.description || names[i] !== q.name
                  ? { description: [q.description, names[i] !== q.name ? `Captured by the route as \`${q.name}\`.` : ''].filter(Boolean).join(' ') }
                  : {}),
                schema: q.schema,
              })),
            }
          : {}),
        ...(d.requestBody
          ? {
              requestBody: {
                description: d.requestBody.description,
                required: d.requestBody.required,
                content: Object.fromEntries(d.requestBody.content),
              },
            }
          : {}),
        responses: responsesOf(d.parts),
        ...(d.deprecated ? { deprecated: true } : {}),
      }
      const security = securityOf(d, schemes)
      if (security) op.security = security
      if (r.host) {
        const servers = serverFor(r.host, opts.server)
        if (servers) op.servers = servers
        op['x-portcullis-host'] = r.host
      }
      op['x-portcullis-route'] = r.id
      op['x-portcullis-location'] = whereOf(r.patternSpan)
      path.item[method.toLowerCase()] = op
      paths.set(p.shape, path)
      operations.set(key, { op, route: r })
    }
  }
  const pathObject = Object.fromEntries([...paths.values()].filter((p) => Object.keys(p.item).length).map((p) => [p.template, p.item]))
  const document: Json = {
    openapi: '3.1.0',
    info: {
      title: opts.title ?? 'Portcullis API',
      version: opts.apiVersion ?? `sha-${Bun.hash(JSON.stringify(pathObject)).toString(16).padStart(16, '0').slice(0, 12)}`,
      description:
        'Generated by `gateway openapi` from the policies. Answers made by the gateway itself carry a `Gateway-Error` header and an RFC 9457 `application/problem+json` body; every answer carries `X-Request-Id`.',
    },
    ...(opts.server ? { servers: [{ url: opts.server }] } : {}),
    tags: [...tags].sort().map((name) => ({ name, description: `Routes of ${name}.policy` })),
    paths: pathObject,
    components: components(schemes, headers),
  }
  return { document, notes }
}

function components(schemes: Named, headers: Named): Json {
  return {
    schemas: {
      Problem: {
        type: 'object',
        description: 'RFC 9457 problem details: an answer made by the gateway itself',
        required: ['type', 'title', 'status', 'detail', 'instance'],
        properties: {
          type: {
            type: 'string',
            description: '`urn:portcullis:error:` and the code (the Gateway-Error header)',
            examples: ['urn:portcullis:error:rate_limited'],
          },
          title: { type: 'string' },
          status: { type: 'integer' },
          detail: { type: 'string' },
          instance: { type: 'string', description: 'The request id (X-Request-Id)' },
        },
      },
      SessionTokens: {
        type: 'object',
        required: ['access_token', 'refresh_token', 'token_type', 'expires_in', 'refresh_expires_in', 'user_info'],
        properties: {
          access_token: { type: 'string' },
          refresh_token: { type: 'string' },
          token_type: { const: 'Bearer' },
          expires_in: { type: 'integer', description: 'seconds' },
          refresh_expires_in: { type: 'integer', description: 'seconds' },
          user_info: { type: 'object', description: "The session verifier's user info" },
        },
      },
    },
    headers: Object.fromEntries(headers.all),
    ...(schemes.all.size ? { securitySchemes: Object.fromEntries(schemes.all) } : {}),
  }
}
