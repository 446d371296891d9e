// What the testing kit (and `gateway explain --as`) needs to know of a built program to present
// credentials the way its routes ask for them: each route's `require` lines with their options,
// its pattern (to find the route a request takes), which route logs in, and the file apps' API
// keys as written (the program itself keeps only their SHA-256). Recorded by buildProgram for
// programs built with `explain` (the kit's, `gateway explain`'s) only: a serving program does not
// keep its checked form and secrets alive for them. Every program keeps its policy texts
// (`sourcesOf`, the admin API's GET /source). Nothing here runs on the request path.
import type { CheckedProgram } from '../check/check-program.ts'
import { readSecret, type Env } from '../policy/secrets.ts'
import type { CompiledRoute } from '../runtime/context.ts'
import type { Program } from '../runtime/program.ts'
import { Router, type PatternSegment } from '../runtime/router.ts'

export type AuthFact =
  | { method: 'hmac'; covers: string[] }
  | { method: 'key'; header: string }
  | { method: 'key'; query: string }
  | { method: 'jwt'; issuer: string | null; audience: string[] | null; appClaim: string | null }
  | { method: 'mtls' }
  | { method: 'session' }

// One `require` line: its methods in order (`require hmac or key`); `guarded` when it is inside a
// `when` block (it may not apply to a request).
export interface RequireFact {
  methods: AuthFact[]
  guarded: boolean
}

export interface RouteFacts {
  route: CompiledRoute
  requires: RequireFact[]
}

export interface KeyFact {
  value: string
  from: number | null
  until: number | null
}

export interface ProgramFacts {
  routes: RouteFacts[]
  // The route a request takes (the gateway's own router over the same patterns).
  lookup(method: string, host: string, segments: string[]): RouteFacts | null
  // A file app's API keys as written in its `api-key` lines (read from the build's env and files).
  apiKeys(app: string): KeyFact[]
  // Built with the kit's JWT key (BuildOptions.testJwtKey): minted tokens are accepted.
  testJwt: boolean
}

// The text of the policy files that hold a program's routes, upstreams and apps, as they were
// loaded, by absolute path.
export type ProgramSources = ReadonlyMap<string, { path: string; text: string }>

const recorded = new WeakMap<Program, ProgramFacts>()
const texts = new WeakMap<Program, ProgramSources>()

export function factsOf(program: Program): ProgramFacts | undefined {
  return recorded.get(program)
}

export function sourcesOf(program: Program): ProgramSources | undefined {
  return texts.get(program)
}

export function recordSources(program: Program, checked: CheckedProgram): void {
  const sources = new Map<string, { path: string; text: string }>()
  const spans = [
    ...checked.routes.map((r) => r.patternSpan),
    ...[...checked.upstreams.values()].map((u) => u.span),
    ...[...checked.apps.values()].map((a) => a.span),
  ]
  for (const { file } of spans) if (!sources.has(file.absPath)) sources.set(file.absPath, { path: file.path, text: file.text })
  texts.set(program, sources)
}

const obj = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {})

function authFact(name: string, cfg: unknown): AuthFact | null {
  const c = obj(cfg)
  switch (name) {
    case 'hmac':
      return { method: 'hmac', covers: (Array.isArray(c.covers) ? c.covers : []).map((x) => String(obj(x).text)) }
    case 'key':
      return typeof c.query === 'string'
        ? { method: 'key', query: c.query }
        : { method: 'key', header: typeof c.header === 'string' ? c.header : 'x-api-key' }
    case 'jwt':
      return {
        method: 'jwt',
        issuer: typeof c.issuer === 'string' ? c.issuer : null,
        audience: Array.isArray(c.audience) ? c.audience.map(String) : null,
        appClaim: typeof c.appClaim === 'string' ? c.appClaim : null,
      }
    case 'mtls':
    case 'session':
      return { method: name }
    default:
      return null
  }
}

export function recordFacts(program: Program, checked: CheckedProgram, env: Env, testJwt: boolean): void {
  const routes: RouteFacts[] = checked.routes.map((r, i) => {
    const requires: RequireFact[] = []
    for (const u of r.uses) {
      if (!u.def.name.startsWith('require ') || !Array.isArray(u.cfg)) continue
      const methods = (u.cfg as unknown[]).flatMap((m) => {
        const f = authFact(String(obj(obj(m).method).name), obj(m).cfg)
        return f ? [f] : []
      })
      if (methods.length) requires.push({ methods, guarded: u.guard != null })
    }
    return { route: program.routes[i]!, requires }
  })
  let router: Router | null = null
  const byRoute = new Map(routes.map((f) => [f.route, f]))
  recorded.set(program, {
    routes,
    testJwt,
    lookup(method, host, segments) {
      if (router === null) {
        router = new Router()
        checked.routes.forEach((r, i) => router!.add(program.routes[i]!, r.pattern.segments as PatternSegment[]))
      }
      const found = router.lookup(method, host, segments)
      return found.kind === 'found' ? (byRoute.get(found.route) ?? null) : null
    },
    apiKeys(app) {
      const c = checked.apps.get(app)
      if (!c) return []
      return c.apiKeys.flatMap((k) => {
        const value = readSecret(k.ref, env)
        return value === undefined ? [] : [{ value, from: k.from, until: k.until }]
      })
    },
  })
}
