// `require claim NAME = VALUE`: the verified token's claim NAME must be VALUE (a string; a
// number or boolean claim compares as its text), or, for a list claim, hold it. 403 otherwise.
import { unquote } from '../policy/ast.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import { defineDirective } from './define.ts'
import { checkJwtBound } from './require-scope.ts'

function matches(v: unknown, want: string): boolean {
  if (typeof v === 'string') return v === want
  if (typeof v === 'number' || typeof v === 'boolean') return String(v) === want
  return Array.isArray(v) && v.some((x) => (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') && String(x) === want)
}

export default defineDirective({
  name: 'require claim',
  stage: 'access',
  places: ['route', 'defaults'],
  usage: 'require claim NAME = VALUE',
  summary: 'The token `require jwt` verified must carry claim NAME with VALUE (or hold VALUE, for a list); 403 otherwise.',
  read(a) {
    const n = a.expect(['word', 'string', 'url'], 'a claim name (or a "namespaced/claim")')
    if (!n) return undefined
    if (!a.expect(['equals'], "'=' and a value")) return undefined
    const v = a.expect(['string', 'word', 'number'], 'a value ("text", a word or a number)')
    if (!v) return undefined
    a.end()
    return { name: n.kind === 'string' ? unquote(n.text) : n.text, value: v.kind === 'string' ? unquote(v.text) : v.text }
  },
  check(_cfg, ctx, at) {
    checkJwtBound('require claim', ctx, at)
  },
  compile(cfg) {
    const { name, value } = cfg
    const refused = new GatewayError('forbidden', `the token's "${name}" claim does not allow this route`)
    return function requireClaim(ctx) {
      const claims = ctx.identity?.jwt
      return claims && matches(claims[name], value) ? undefined : refused
    }
  },
})
