// `require scope S [S…]`: the verified token must grant every listed scope, in its `scope`
// claim (space-separated, RFC 8693 §4.2) or `scp` (a list or a string, as Azure AD and Okta
// write it). A token without them gets 403 and the RFC 6750 `insufficient_scope` challenge.
import { unquote } from '../policy/ast.ts'
import type { Span } from '../policy/source.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import { defineDirective, type CheckContext } from './define.ts'

// `require scope` and `require claim` read the claims a `require jwt` line verified.
export function checkJwtBound(name: string, ctx: CheckContext, at: Span): void {
  if (!ctx.route.binds.has('jwt'))
    ctx.bag.error('unbound-jwt', `'${name}' needs a route that verifies a token; the route ${ctx.route.label} verifies none`, at, {
      message: `add a line before it: require jwt jwks URL (or key env NAME | key file "path")`,
    })
}

function granted(claims: Readonly<Record<string, unknown>> | null | undefined): Set<string> {
  const out = new Set<string>()
  if (!claims) return out
  for (const v of [claims.scope, claims.scp]) {
    if (typeof v === 'string') for (const s of v.split(' ')) out.add(s)
    else if (Array.isArray(v)) for (const s of v) if (typeof s === 'string') out.add(s)
  }
  return out
}

export default defineDirective({
  name: 'require scope',
  stage: 'access',
  places: ['route', 'defaults'],
  usage: 'require scope SCOPE [SCOPE…]',
  summary: 'The token `require jwt` verified must grant every listed scope (`scope` or `scp` claim); 403 otherwise.',
  read(a) {
    const scopes: string[] = []
    let ok = true
    while (!a.done()) {
      const s = a.expect(['word', 'string', 'url'], 'a scope like orders:write')
      if (!s) return undefined
      const scope = s.kind === 'string' ? unquote(s.text) : s.text
      // RFC 6749 §3.3: printable ASCII but `"` and `\`, no spaces.
      if (!/^[\x21\x23-\x5B\x5D-\x7E]+$/.test(scope))
        ok = a.fail('bad-scope', `'${scope}' is not a scope: printable ASCII without spaces, quotes or backslashes`, s.span) ?? false
      scopes.push(scope)
      a.acceptKind('comma')
    }
    if (scopes.length === 0) return a.fail('missing-argument', "'require scope' expects at least one scope")
    return ok ? { scopes: [...new Set(scopes)] } : undefined
  },
  check(_cfg, ctx, at) {
    checkJwtBound('require scope', ctx, at)
  },
  compile(cfg) {
    const needed = cfg.scopes
    const refused = new GatewayError('forbidden', `the token does not grant the scope${needed.length > 1 ? 's' : ''} ${needed.join(' ')}`, {
      'www-authenticate': `Bearer error="insufficient_scope", scope="${needed.join(' ')}"`,
    })
    return function requireScope(ctx) {
      const has = granted(ctx.identity?.jwt)
      for (const s of needed) if (!has.has(s)) return refused
      return undefined
    }
  },
})
