// The shape of a directive module. A directive declares itself; the core iterates.
import type { ArgCursor } from '../policy/cursor.ts'
import type { DiagnosticBag } from '../policy/diagnostics.ts'
import type { Binding, RouteInfo, TemplateMode } from '../policy/references.ts'
import type { SecretRef } from '../policy/cursor.ts'
import type { Span } from '../policy/source.ts'
import type { AppDirectory } from '../runtime/identity.ts'
import type { IpMatcher } from '../runtime/ip.ts'
import type { Store } from '../store/store.ts'
import type { TierRate } from '../runtime/limits.ts'
import type { Template } from '../policy/template.ts'
import type { AccessFn, EarlyAnswerFn, PreflightFn, ResponseFn, Stage, StageFns } from '../runtime/context.ts'
import type { UpstreamPool } from '../runtime/upstream.ts'
import type { RouteTracing } from '../runtime/route-tracing.ts'
import type { SinkInput } from '../log/sinks/spec.ts'

// The session block as checked: its verify upstream and path, lifetimes filled in.
export interface CheckedSession {
  upstream: string
  path: string
  ttlMs: number
  refreshMs: number
  singleSignOn: boolean
  span: Span
}

export interface SessionSettings {
  verify: UpstreamPool
  verifyPath: string
  ttlMs: number
  refreshMs: number
  singleSignOn: boolean
}

export type Place = 'route' | 'defaults'
export type { Binding, RouteInfo, TemplateMode }

export interface CheckContext {
  bag: DiagnosticBag
  route: RouteInfo
  upstreams: ReadonlySet<string>
  // Apps declared in files and (known at build time) in the store, and their groups.
  apps: ReadonlySet<string>
  groups: ReadonlySet<string>
  // --workers above 1 without --redis: each worker has its own memory store (no shared nonces).
  perWorkerStore: boolean
  // The program's session block (login, require session and the other session directives need one).
  session: CheckedSession | null
  // The sinks the program declares (`log to NAME`).
  sinks: ReadonlySet<string>
  checkTemplate(t: Template, mode: TemplateMode): void
  // The secret's value, or undefined after reporting that it is missing.
  secret(ref: SecretRef): string | undefined
}

export interface TestJwtKey {
  kid: string
  alg: string
  publicKey: string
}

export interface CompileContext {
  route: RouteInfo & { id: string }
  apps: AppDirectory
  store: Store
  now(): number // the build's clock (tests advance it)
  // Kit builds (portcullis/testing) only: every `require jwt` also accepts tokens whose header
  // names this key id, signed by this public key (PEM); issuer, audience and times as usual.
  testJwtKey: TestJwtKey | null
  secret(ref: SecretRef): string // checked to exist
  trustProxy: IpMatcher | null
  // Rate tiers by name (`throttle tier per app`).
  tiers: ReadonlyMap<string, TierRate | 'unlimited'>
  // State the directives of one route share (e.g. its throttles and quotas, decided together).
  routeState<T>(name: string, init: () => T): T
  // A step that runs once after every other access directive of the route (named, so several
  // uses register it once): e.g. the throttles' decision, after the caller is identified.
  afterAccess(name: string, fn: AccessFn): void
  // A step that runs (once, however many uses register it) when the access or rewrite stage
  // ends the request with an answer of its own: e.g. the RateLimit fields of a 401 given
  // before the throttles' decision.
  onEarlyAnswer(name: string, fn: EarlyAnswerFn): void
  // Answers the route's CORS preflights (OPTIONS with Origin and Access-Control-Request-Method)
  // before its access stage. A preflight goes to the route that serves the method it asks about,
  // so that route's methods need not include OPTIONS.
  preflight(fn: PreflightFn): void
  // A header step that runs first in the response stage on every answer of the route (the
  // terminal's, a gateway error, a preflight's): access headers that depend on the answer.
  everyAnswer(name: string, fn: ResponseFn): void
  upstream(name: string): UpstreamPool
  inlineUpstream(url: URL): UpstreamPool
  // The session block with its verify upstream's pool; null when the program has none (the
  // checker then refused every directive that needs it).
  session: SessionSettings | null
  // A declared sink, shared by every route of the program that logs to it (checked to exist).
  sink(name: string): SinkInput
  template(t: Template, mode: TemplateMode): (ctx: import('../runtime/context.ts').RequestContext) => string | undefined
  // The route's own tracing (`trace`), read as each request begins.
  tracing(setting: RouteTracing): void
  onDispose(fn: () => void): void
  // A file the program is made from besides the policies (a script and the modules it imports):
  // the gateway watches it for changes too when it is outside the policy directory.
  dependsOn(path: string): void
}

export interface DirectiveDef<C, S extends Stage = Stage> {
  name: string // = file name = what users type
  stage: S
  places: readonly Place[]
  usage: string
  summary: string // one line for the README table
  terminal?: boolean
  // At most one per block: a route's own use replaces the one in defaults.
  once?: boolean
  // Directives that must come before this one when a route uses both (defaults first, then
  // source order: the order they run in): e.g. `sign response` after `encrypt response`.
  after?: readonly string[]
  // True when this use always ends the request early (then the route needs no terminal).
  endsRequest?(cfg: C): boolean
  // The identities this use binds (app, jwt, user), for the checker's reference checks.
  binds?: readonly Binding[] | ((cfg: C) => readonly Binding[])
  // Header names this directive sets: clients may not send them (in any `_`/`.` spelling).
  setsHeaders?(cfg: C): string[]
  // What the use is made of besides its statement (a script's version), for reload reports: the
  // route counts as changed when it changes.
  fingerprint?(cfg: C): string
  // How the route table shows this use (default: the name).
  describe?(cfg: C): string
  read(a: ArgCursor): C | undefined
  check?(cfg: C, ctx: CheckContext, at: Span): void
  // null: nothing runs at this directive's place (its work is registered with afterAccess).
  compile(cfg: C, ctx: CompileContext): StageFns[S] | null
}

// Erases the config type so the registry can hold every directive in one array.
export type AnyDirective = DirectiveDef<any, Stage>

export function defineDirective<C, S extends Stage>(def: DirectiveDef<C, S>): DirectiveDef<C, S> {
  return Object.freeze(def)
}
