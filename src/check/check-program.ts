// Parsed files → a checked program: names, references, placement, route conflicts,
// and every directive's own checks. All problems go into one bag, in one pass.
import type { AnyDirective, CheckContext } from '../directives/define.ts'
import {
  DECLARATION_KEYWORDS,
  isDeclarationKeyword,
  type Arg,
  type Declaration,
  type DeclarationKeyword,
  type ParsedFile,
  type Statement,
} from '../policy/ast.ts'
import { didYouMean, type DiagnosticBag } from '../policy/diagnostics.ts'
import { parsePattern, type ParsedPattern } from '../policy/pattern.ts'
import type { Binding, RouteInfo } from '../policy/references.ts'
import { spanOf, type Span } from '../policy/source.ts'
import { checkTemplate } from '../policy/template.ts'
import { appBlock, readBlock, readTier, SESSION_DEFAULTS, sessionBlock, sinkBlock, sinkSpec, type AppConfig, type TierConfig } from './blocks.ts'
import type { SinkSpec } from '../log/sinks/spec.ts'
import { upstreamBlock, type UpstreamConfig } from './upstream-block.ts'
import { findDirective } from '../directives/index.ts'
import type { CheckedSession } from '../directives/define.ts'
import { resolveStatement } from './resolve.ts'
import type { Guard } from './conditions.ts'
import { checkGuards } from './guards.ts'
import { checkApp } from './apps.ts'
import { readSecret, type Env } from '../policy/secrets.ts'

export interface CheckOptions {
  env: Env
  now: number
  // Store apps known at build time: a name or key id clashing with a file app is an error.
  storeApps: readonly { name: string; key: string | null; group: string | null }[]
  perWorkerStore?: boolean
  // Whether the serving gateway has --redis (a `redis stream` sink needs it); undefined when
  // unknown (`gateway check`), which reports nothing.
  redis?: boolean
}
import { findConflicts } from './conflicts.ts'

export interface DirectiveUse {
  def: AnyDirective
  cfg: unknown
  span: Span // the directive's name
  statement: Span // the whole statement, arguments included
  fromDefaults: boolean
  // Inside `when` blocks: runs only for requests that meet the guard (src/check/conditions.ts).
  guard?: Guard
}

export interface CheckedRoute {
  id: string
  label: string
  methods: string[] | null
  host: string | null
  pattern: ParsedPattern
  patternText: string
  patternSpan: Span
  uses: DirectiveUse[]
  info: RouteInfo
}

export interface CheckedProgram {
  upstreams: Map<string, UpstreamConfig & { span: Span }>
  apps: Map<string, AppConfig & { span: Span }>
  tiers: Map<string, TierConfig>
  routes: CheckedRoute[]
  // The session block, when there is one with a verify upstream (its lifetimes filled in).
  session: CheckedSession | null
  sinks: Map<string, SinkSpec>
}

export type { CheckedSession } from '../directives/define.ts'

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT']
const DECLARATION_USAGE: Record<DeclarationKeyword, string> = {
  upstream: 'upstream NAME { target URL … }',
  app: 'app NAME { key "…" … }',
  tier: 'tier NAME RATE [burst N]',
  sink: 'sink NAME { … }',
  session: 'session { verify via UPSTREAM /path … }',
  defaults: 'defaults { … }',
  import: 'import "file.policy"',
  match: 'match METHODS /path [host NAME] { … }',
}

function declare(seen: Map<string, Span>, kind: string, name: string, span: Span, bag: DiagnosticBag): boolean {
  const prev = seen.get(`${kind}:${name}`)
  if (prev) {
    const message = name ? `${kind} '${name}' is declared twice` : `there can be only one ${kind} block`
    bag.error('duplicate-name', message, span, { message: 'first declared here', span: prev })
    return false
  }
  seen.set(`${kind}:${name}`, span)
  return true
}

const NO_OPTIONS: CheckOptions = { env: process.env, now: Date.now(), storeApps: [] }

export function checkProgram(files: ParsedFile[], bag: DiagnosticBag, opts: CheckOptions = NO_OPTIONS): CheckedProgram {
  const program: CheckedProgram = { upstreams: new Map(), apps: new Map(), tiers: new Map(), routes: [], session: null, sinks: new Map() }
  const seen = new Map<string, Span>()
  const decls = files.flatMap((f) => f.declarations)
  let defaults: { body: Statement[]; span: Span } | undefined
  let sessionUpstream: Arg | undefined
  const appTiers: Arg[] = []
  const sinkNames = new Set<string>()

  for (const d of decls) {
    if (d.kind === 'upstream' && declare(seen, 'upstream', d.name, d.nameSpan, bag)) {
      const cfg = readBlock(upstreamBlock, d.body, bag, `upstream '${d.name}'`)
      // Target lines that failed to read are reported already.
      if (cfg.targets.length === 0 && !d.body.some((st) => st.words[0]!.text === 'target'))
        bag.error('missing-field', `upstream '${d.name}' has no target`, d.nameSpan, { message: 'usage: target http://host:port [weight N]' })
      program.upstreams.set(d.name, { ...cfg, span: d.nameSpan })
    } else if (d.kind === 'app' && declare(seen, 'app', d.name, d.nameSpan, bag)) {
      const cfg = readBlock(appBlock, d.body, bag, `app '${d.name}'`)
      if (cfg.tier) appTiers.push(cfg.tier)
      program.apps.set(d.name, { ...cfg, span: d.nameSpan })
      checkApp(d.name, { ...cfg, span: d.nameSpan }, bag, opts.env, opts.now)
    } else if (d.kind === 'tier' && declare(seen, 'tier', d.name, d.nameSpan, bag)) {
      const cfg = readTier(
        { words: [{ kind: 'word', text: 'tier', span: d.span }, { kind: 'word', text: d.name, span: d.nameSpan }, ...d.args], span: d.span },
        bag,
      )
      if (cfg) program.tiers.set(d.name, cfg)
    } else if (d.kind === 'sink' && declare(seen, 'sink', d.name, d.nameSpan, bag)) {
      const cfg = readBlock(sinkBlock, d.body, bag, `sink '${d.name}'`)
      if (!cfg.targetSpan) bag.error('missing-field', `sink '${d.name}' says nowhere to write: give it redis, http or file`, d.nameSpan)
      else if (cfg.target?.kind === 'redis' && opts.redis === false)
        bag.error('needs-redis', `sink '${d.name}' writes to a Redis stream: start the gateway with --redis URL`, cfg.targetSpan, {
          message: "the stream is written on the gateway's Redis (--redis or REDIS_URL)",
        })
      const spec = sinkSpec(d.name, cfg)
      if (spec) program.sinks.set(d.name, spec)
      sinkNames.add(d.name) // (one that failed to read is reported already: `log to` it is no unknown name)
    } else if (d.kind === 'session' && declare(seen, 'session', '', d.span, bag)) {
      const cfg = readBlock(sessionBlock, d.body, bag, 'the session block')
      sessionUpstream = cfg.verify?.upstream
      if (!cfg.verify) bag.error('missing-field', 'the session block needs `verify via UPSTREAM /path`: the upstream that checks logins', d.span)
      else
        program.session = {
          upstream: cfg.verify.upstream.text,
          path: cfg.verify.path,
          ttlMs: cfg.ttlMs ?? SESSION_DEFAULTS.ttlMs,
          refreshMs: cfg.refreshMs ?? SESSION_DEFAULTS.refreshMs,
          singleSignOn: cfg.singleSignOn ?? false,
          span: d.span,
        }
    } else if (d.kind === 'defaults') {
      if (defaults)
        bag.error('duplicate-name', 'there can be only one defaults block', d.span, { message: 'first declared here', span: defaults.span })
      else defaults = d
    } else if (d.kind === 'unknown') {
      const head = d.statement.words[0]!
      if (isDeclarationKeyword(head.text)) {
        malformedDeclaration(d.statement, head.text, bag)
        continue
      }
      const near = didYouMean(head.text, DECLARATION_KEYWORDS)
      bag.error(
        'unknown-declaration',
        `unknown declaration '${head.text}'; at the top level: ${DECLARATION_KEYWORDS.join(', ')}`,
        head.span,
        ...(near ? [{ message: `did you mean '${near}'?` }] : [{ message: 'directives go inside a match { … } or defaults { … } block' }]),
      )
    }
  }
  // Key ids and tiers are program-wide: check after every declaration is known.
  const keys = new Map<string, Span>()
  for (const [name, app] of program.apps) {
    if (app.key === undefined) continue
    const prev = keys.get(app.key)
    if (prev)
      bag.error('duplicate-name', `app '${name}' uses the key "${app.key}" of another app`, app.keySpan, { message: 'first used here', span: prev })
    else keys.set(app.key, app.keySpan!)
  }
  for (const s of opts.storeApps) {
    const clash = program.apps.get(s.name)
    if (clash)
      bag.error('duplicate-name', `app '${s.name}' is also a store app; file and store apps share one namespace`, clash.span, {
        message: `remove the store app (DELETE /apps/${s.name} on the admin API) or rename this one`,
      })
    else if (s.key !== null && keys.has(s.key))
      bag.error('duplicate-name', `the key "${s.key}" is also used by the store app '${s.name}'`, keys.get(s.key)!, {
        message: `remove the store app (DELETE /apps/${s.name} on the admin API) or give this app another key`,
      })
  }
  for (const t of appTiers) if (!program.tiers.has(t.text)) unknownName(bag, 'tier', t, program.tiers.keys())
  if (sessionUpstream && !program.upstreams.has(sessionUpstream.text)) unknownName(bag, 'upstream', sessionUpstream, program.upstreams.keys())

  const upstreamNames = new Set(program.upstreams.keys())
  const appNames = new Set([...program.apps.keys(), ...opts.storeApps.map((a) => a.name)])
  const groups = new Set([...[...program.apps.values()].flatMap((a) => a.group ?? []), ...opts.storeApps.flatMap((a) => a.group ?? [])])
  const defaultUses = defaults ? defaults.body.flatMap((st) => resolveStatement(st, 'defaults', bag) ?? []) : []
  onlyOnce(defaultUses, bag)
  for (const d of decls) {
    if (d.kind !== 'match') continue
    const route = checkRoute(
      d,
      defaultUses,
      {
        upstreams: upstreamNames,
        apps: appNames,
        groups,
        perWorkerStore: opts.perWorkerStore ?? false,
        env: opts.env,
        session: program.session,
        sinks: sinkNames,
      },
      bag,
    )
    if (route) program.routes.push(route)
  }
  findConflicts(program.routes, bag)
  return program
}

// `upstream {`, `app "partner" {`, `tier 5/min`: a named declaration whose name is missing or not a
// plain name, reported where the name should be.
function malformedDeclaration(st: Statement, keyword: DeclarationKeyword, bag: DiagnosticBag): void {
  const usage = { message: `usage: ${DECLARATION_USAGE[keyword]}` }
  const name = st.words[1]
  const named = DECLARATION_USAGE[keyword].startsWith(`${keyword} NAME`)
  if (named && (!name || name.kind !== 'word')) {
    const found = name ? `'${name.text}'` : st.blockSpan ? "'{'" : 'the end of the line'
    const at = name?.span ?? (st.blockSpan ? spanOf(st.blockSpan.file, st.blockSpan.offset, 1) : afterSpan(st.span))
    const quoted = name?.kind === 'string' && /^"[A-Za-z_][A-Za-z0-9_-]*"$/.test(name.text)
    const hint = quoted ? { message: `names are not quoted: write ${keyword} ${name.text.slice(1, -1)}` } : usage
    bag.error('syntax', `expected a name for the ${keyword}, found ${found}`, at, hint)
    return
  }
  bag.error('syntax', `malformed ${keyword} declaration`, st.span, usage)
}

function afterSpan(span: Span): Span {
  return spanOf(span.file, span.offset + span.length, 1)
}

function onlyOnce(uses: DirectiveUse[], bag: DiagnosticBag): void {
  for (const u of uses) {
    const first = uses.find((o) => o.def === u.def)!
    if (u.def.once && first !== u)
      bag.error('repeated-directive', `'${u.def.name}' is given once in a block`, u.span, { message: 'first given here', span: first.span })
  }
}

function unknownName(bag: DiagnosticBag, kind: string, arg: Arg, known: Iterable<string>): void {
  const near = didYouMean(arg.text, known)
  bag.error(`unknown-${kind}`, `unknown ${kind} '${arg.text}'`, arg.span, ...(near ? [{ message: `did you mean '${near}'?` }] : []))
}

function checkMethods(methods: Arg[], bag: DiagnosticBag): string[] | null | undefined {
  if (methods.length === 1 && methods[0]!.kind === 'star') return null
  const out: string[] = []
  for (const m of methods) {
    if (METHODS.includes(m.text)) {
      out.push(m.text)
      continue
    }
    const upper = METHODS.includes(m.text.toUpperCase())
    const near = upper ? m.text.toUpperCase() : didYouMean(m.text.toUpperCase(), METHODS)
    bag.error(
      'bad-method',
      `unknown HTTP method '${m.text}'${upper ? ' (methods are upper case)' : ''}`,
      m.span,
      ...(near ? [{ message: `did you mean '${near}'?` }] : []),
    )
    return undefined
  }
  return [...new Set(out)]
}

function checkRoute(
  d: Extract<Declaration, { kind: 'match' }>,
  defaultUses: DirectiveUse[],
  names: {
    upstreams: ReadonlySet<string>
    apps: ReadonlySet<string>
    groups: ReadonlySet<string>
    perWorkerStore: boolean
    env: Env
    session: CheckedSession | null
    sinks: ReadonlySet<string>
  },
  bag: DiagnosticBag,
): CheckedRoute | undefined {
  const methods = checkMethods(d.methods, bag)
  const pattern = parsePattern(d.pattern, bag)
  let host: string | null = null
  if (d.host) {
    host = d.host.text.toLowerCase()
    if (!/^(\*\.)?[a-z0-9]([a-z0-9\-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9\-]*[a-z0-9])?)*$/.test(host)) {
      bag.error('bad-host', `'${d.host.text}' is not a host name (a port is not part of it)`, d.host.span)
    }
  }
  const own = d.body.flatMap((st) => resolveStatement(st, 'route', bag) ?? [])
  onlyOnce(own, bag)
  // A directive given once (`once`, like cors): the route's own replaces the one in defaults.
  const uses = [...defaultUses.filter((u) => !(u.def.once && own.some((o) => o.def === u.def))), ...own]
  const methodText = methods === null ? '*' : d.methods.map((m) => m.text).join(',')
  const id = `${methodText} ${d.pattern.text}${host ? ` host ${host}` : ''}`
  const binds = new Set<Binding>(uses.flatMap((u) => (typeof u.def.binds === 'function' ? u.def.binds(u.cfg) : (u.def.binds ?? []))))
  const info: RouteInfo = { params: pattern?.params ?? new Map(), binds, label: id }
  const terminals = own.filter((u) => u.def.terminal && !u.guard)
  // A terminal that failed to read is reported already; do not also call it missing.
  const namesTerminal = d.body.some((st) => findDirective(st.words.map((w) => w.text))?.def.terminal)
  const ends = uses.some((u) => !u.guard && u.def.endsRequest?.(u.cfg))
  // The `when` blocks' conditions, and the terminals they hold (a route's terminal may be in them).
  const route = { methods: methods ?? null, segments: pattern?.segments ?? [], info }
  const answeredInWhen = checkGuards(uses, route, terminals[0] ?? (namesTerminal || ends), bag)
  if (terminals.length === 0 && !namesTerminal && !ends && !answeredInWhen) {
    bag.error('missing-terminal', `the route ${id} has no terminal directive: end it with proxy or respond`, d.pattern.span)
  }
  for (const extra of terminals.slice(1)) {
    bag.error('multiple-terminals', `a route has one terminal directive; '${extra.def.name}' follows '${terminals[0]!.def.name}'`, extra.span, {
      message: 'first terminal here',
      span: terminals[0]!.span,
    })
  }
  if (pattern) {
    const ctx: CheckContext = {
      bag,
      route: info,
      upstreams: names.upstreams,
      apps: names.apps,
      groups: names.groups,
      perWorkerStore: names.perWorkerStore,
      session: names.session,
      sinks: names.sinks,
      checkTemplate: (t, mode) => checkTemplate(t, mode, info, bag),
      secret: (ref) => readSecret(ref, names.env, bag),
    }
    for (const u of uses) u.def.check?.(u.cfg, ctx, u.span)
  }
  uses.forEach((u, i) => {
    for (const later of uses.slice(i + 1)) {
      if (!u.def.after?.includes(later.def.name)) continue
      bag.error('directive-order', `'${later.def.name}' must come before '${u.def.name}': they run in this order`, later.span, {
        message: `'${u.def.name}' is here`,
        span: u.span,
      })
    }
  })
  if (!pattern || methods === undefined) return undefined
  return { id, label: id, methods, host, pattern, patternText: d.pattern.text, patternSpan: d.pattern.span, uses, info }
}
