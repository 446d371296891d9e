// What `require hmac | jwt | mtls | key` share: each is an authentication method with its own
// options; `require A or B` accepts either. The first method whose credential the request
// carries decides (a presented but bad credential is refused, not passed over).
import type { ArgCursor } from '../policy/cursor.ts'
import type { Span } from '../policy/source.ts'
import { bind, unauthenticated, type Authenticator } from '../runtime/auth.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import type { Binding, CheckContext, CompileContext, DirectiveDef } from './define.ts'
import { defineDirective } from './define.ts'

export interface AuthMethodDef<C> {
  name: string // after `require`
  options: string // usage of the options, e.g. `[window D] [covers "…"…]`
  summary: string
  binds: readonly Binding[]
  challenge: string // WWW-Authenticate scheme when nothing was presented
  // Request headers this method owns (the client's never reach the upstream).
  setsHeaders?(cfg: C): string[]
  read(a: ArgCursor): C | undefined
  check?(cfg: C, ctx: CheckContext, at: Span): void
  compile(cfg: C, ctx: CompileContext): Authenticator
}

type AnyMethod = AuthMethodDef<any>
type Chosen = { method: AnyMethod; cfg: unknown }[]

let all: readonly AnyMethod[] = []
const methodOf = new WeakMap<object, AnyMethod>()
// The registry (index.ts) names the `require` directives an `or` may reach.
export function orAlternatives(directives: readonly object[]): void {
  all = directives.map((d) => methodOf.get(d)!)
}

export function defineRequire<C>(method: AuthMethodDef<C>): DirectiveDef<Chosen, 'access'> {
  const def = defineDirective<Chosen, 'access'>({
    name: `require ${method.name}`,
    stage: 'access',
    places: ['route', 'defaults'],
    usage: `require ${method.name} ${method.options} [or METHOD …]`.replace(/ +/g, ' '),
    summary: method.summary,
    binds: (chosen) => [...new Set(chosen.flatMap((c) => c.method.binds))],
    setsHeaders: (chosen) => chosen.flatMap((c) => c.method.setsHeaders?.(c.cfg) ?? []),
    describe: (chosen) => `require ${chosen.map((c) => c.method.name).join(' or ')}`,
    read(a) {
      const chosen: Chosen = []
      let m: AnyMethod | undefined = method
      while (m) {
        const cfg = m.read(a)
        if (cfg === undefined) return undefined
        chosen.push({ method: m, cfg })
        if (!a.accept('or')) break
        const w = a.word(`a method: ${all.map((x) => x.name).join(', ')}`)
        if (!w) return undefined
        m = all.find((x) => x.name === w.text)
        if (!m) return a.fail('unknown-method', `unknown authentication method '${w.text}'; methods: ${all.map((x) => x.name).join(', ')}`, w.span)
        if (chosen.some((c) => c.method === m)) return a.fail('duplicate-method', `'${w.text}' is named twice`, w.span)
      }
      a.end()
      return chosen
    },
    check(chosen, ctx, at) {
      for (const c of chosen) c.method.check?.(c.cfg, ctx, at)
    },
    compile(chosen, ctx) {
      const auths = chosen.map((c) => c.method.compile(c.cfg, ctx))
      const challenge = chosen.map((c) => c.method.challenge).join(', ')
      const missing = `this route needs ${chosen.map((c) => c.method.name).join(' or ')} credentials`
      if (auths.length === 1) {
        const auth = auths[0]!
        return async function requireCredential(ctx) {
          const r = await auth(ctx)
          if (r === null) return unauthenticated(missing, challenge)
          return r instanceof GatewayError ? r : bind(ctx, r)
        }
      }
      return async function requireAnyCredential(ctx) {
        for (const auth of auths) {
          const r = await auth(ctx)
          if (r === null) continue
          return r instanceof GatewayError ? r : bind(ctx, r)
        }
        return unauthenticated(missing, challenge)
      }
    },
  })
  methodOf.set(def, method)
  return def
}
