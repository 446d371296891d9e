// References usable in values and templates: `param.id`, `request.header.X-Foo`, …
// Each root says when it is valid (check time) and how to read it (compile time).
import type { RequestContext } from '../runtime/context.ts'
import { didYouMean } from './diagnostics.ts'

// What a route offers its templates: its captures and the identities its directives bind.
export type Binding = 'app' | 'user' | 'jwt'
export type TemplateMode = 'path' | 'text'

export interface RouteInfo {
  params: ReadonlyMap<string, { rest: boolean }>
  binds: ReadonlySet<Binding>
  label: string // `GET /api/{id}` for messages
}

type Getter = (ctx: RequestContext) => string | undefined

interface RefRoot {
  root: string
  describe: string
  // An error message, or undefined when `rest` (the part after the root) is fine here.
  check(rest: string, route: RouteInfo): string | undefined
  // A corrected `rest` for a misspelt one (`hedaer.x` → `header.x`), for the did-you-mean note.
  suggest?(rest: string, route: RouteInfo): string | undefined
  compile(rest: string, mode: TemplateMode): Getter
}

function decodeCapture(v: string): string {
  try {
    return decodeURIComponent(v)
  } catch {
    return v
  }
}

function captureGetter(name: string, mode: TemplateMode): Getter {
  return mode === 'path'
    ? (ctx) => ctx.params[name]
    : (ctx) => {
        const v = ctx.params[name]
        return v === undefined ? undefined : decodeCapture(v)
      }
}

const requestFields: Record<string, Getter> = {
  ip: (ctx) => ctx.ip,
  id: (ctx) => ctx.id,
  method: (ctx) => ctx.method,
  path: (ctx) => ctx.path,
  host: (ctx) => ctx.host,
  scheme: (ctx) => ctx.proto,
}

function needs(binding: Binding, what: string) {
  return (rest: string, route: RouteInfo) =>
    route.binds.has(binding)
      ? undefined
      : `'${what}.${rest}' needs a route that identifies the caller's ${binding}; the route ${route.label} identifies none`
}

// A claim or user field as header text: strings as they are, lists space-separated (as
// OAuth writes scopes), anything else as JSON.
function text(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v.join(' ')
  return JSON.stringify(v)
}

const APP_FIELDS = ['name', 'key', 'tier', 'group'] as const

function checkApp(rest: string, route: RouteInfo): string | undefined {
  const bound = needs('app', 'app')(rest, route)
  if (bound) return bound
  if ((APP_FIELDS as readonly string[]).includes(rest) || /^meta\.[A-Za-z_][A-Za-z0-9_-]*$/.test(rest)) return undefined
  return `unknown app field '${rest}': use app.name, app.key, app.tier, app.group or app.meta.KEY`
}

// `meta.KEY`, `header.NAME`: the first segment is the one that may be misspelt.
function suggestSegment(rest: string, leaves: readonly string[], branches: readonly string[]): string | undefined {
  const dot = rest.indexOf('.')
  if (dot !== -1) {
    const near = didYouMean(rest.slice(0, dot), branches)
    return near && `${near}${rest.slice(dot)}`
  }
  const near = didYouMean(rest, [...leaves, ...branches])
  return near && (branches.includes(near) ? `${near}.NAME` : near)
}

function appGetter(rest: string): Getter {
  if (rest.startsWith('meta.')) {
    const k = rest.slice(5)
    return (ctx) => ctx.identity?.app?.meta[k]
  }
  const f = rest as (typeof APP_FIELDS)[number]
  return (ctx) => ctx.identity?.app?.[f] ?? undefined
}

function claimPath(rest: string): (o: Readonly<Record<string, unknown>>) => unknown {
  return (o) => o[rest]
}

const roots: RefRoot[] = [
  {
    root: 'param',
    describe: 'param.NAME (a capture of the path pattern)',
    check: (rest, route) => (route.params.has(rest) ? undefined : `the route ${route.label} has no capture named '${rest}'`),
    suggest: (rest, route) => didYouMean(rest, route.params.keys()),
    compile: (rest, mode) => captureGetter(rest, mode),
  },
  {
    root: 'request',
    describe: 'request.ip, request.id, request.method, request.path, request.host, request.scheme, request.header.NAME, request.query.NAME',
    check: (rest) => (rest in requestFields || /^(header|query)\.[A-Za-z0-9_\-.]+$/.test(rest) ? undefined : `unknown request field '${rest}'`),
    suggest: (rest) => suggestSegment(rest, Object.keys(requestFields), ['header', 'query']),
    compile(rest) {
      if (rest.startsWith('header.')) {
        const name = rest.slice(7).toLowerCase()
        return (ctx) => ctx.req.headers.get(name) ?? undefined
      }
      if (rest.startsWith('query.')) {
        const name = rest.slice(6)
        return (ctx) => new URLSearchParams(ctx.rawQuery).get(name) ?? undefined
      }
      return requestFields[rest]!
    },
  },
  // Identity references: valid only on routes where a directive binds the caller.
  {
    root: 'app',
    describe: 'app.name, app.key, app.tier, app.group, app.meta.KEY',
    check: checkApp,
    suggest: (rest) => suggestSegment(rest, APP_FIELDS, ['meta']),
    compile: appGetter,
  },
  {
    root: 'jwt',
    describe: 'jwt.CLAIM',
    check: needs('jwt', 'jwt'),
    compile(rest) {
      const claim = claimPath(rest)
      return (ctx) => (ctx.identity?.jwt ? text(claim(ctx.identity.jwt)) : undefined)
    },
  },
  {
    root: 'user',
    describe: 'user.id, user.FIELD (of the user info)',
    check: needs('user', 'user'),
    compile(rest) {
      if (rest === 'id') return (ctx) => ctx.identity?.user?.id
      return (ctx) => (ctx.identity?.user ? text(ctx.identity.user.info[rest]) : undefined)
    },
  },
]

function split(ref: string): [RefRoot | undefined, string] {
  const dot = ref.indexOf('.')
  const head = dot === -1 ? ref : ref.slice(0, dot)
  return [roots.find((r) => r.root === head), dot === -1 ? '' : ref.slice(dot + 1)]
}

export interface RefProblem {
  message: string
  // What was probably meant (`request.header.x` for `request.hedaer.x`), when something is close.
  suggestion?: string
}

function looksLike(): string {
  return `references look like ${roots.map((r) => `${r.root}.…`).join(', ')}`
}

// A bare name (`{id}`) is a capture of the route; anything else needs a known root.
export function checkReference(ref: string, route: RouteInfo): RefProblem | undefined {
  if (!ref.includes('.')) {
    if (route.params.has(ref)) return undefined
    const message = `unknown reference '${ref}': the route ${route.label} has no capture of that name, and ${looksLike()}`
    // `{ip}` is request.ip (exactly) before it is a misspelt capture `{id}`.
    const suggestion = ref in requestFields ? `request.${ref}` : didYouMean(ref, route.params.keys())
    return { message, suggestion }
  }
  const [root, rest] = split(ref)
  if (!root) {
    // `reqest.hedaer.x`: the root and then the rest may both be misspelt.
    const nearName = didYouMean(
      ref.slice(0, ref.indexOf('.')),
      roots.map((r) => r.root),
    )
    const near = roots.find((r) => r.root === nearName)
    let suggestion: string | undefined
    if (near && rest) {
      const fixed = near.check(rest, route) === undefined ? undefined : near.suggest?.(rest, route)
      suggestion = `${near.root}.${fixed ?? rest}`
    }
    return { message: `unknown reference '${ref}'; ${looksLike()}`, suggestion }
  }
  if (!rest) return { message: `incomplete reference '${ref}': expected ${root.describe}` }
  const message = root.check(rest, route)
  if (message === undefined) return undefined
  const fixed = root.suggest?.(rest, route)
  return { message, suggestion: fixed && fixed !== rest ? `${root.root}.${fixed}` : undefined }
}

export function compileReference(ref: string, mode: TemplateMode): Getter {
  if (!ref.includes('.')) return captureGetter(ref, mode)
  const [root, rest] = split(ref)
  return root!.compile(rest, mode)
}
