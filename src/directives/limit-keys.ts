// `per KEY` of `throttle` and `quota`: app, ip, route, user, header NAME, jwt.CLAIM, or parts
// joined by `+` (`app+route`, `ip+header X-Tenant`), shared by both directives.
import type { ArgCursor } from '../policy/cursor.ts'
import type { Span } from '../policy/source.ts'
import type { KeyPart } from '../runtime/limits.ts'
import type { Binding, CheckContext } from './define.ts'

export interface ReadKey {
  parts: KeyPart[]
  text: string
  span: Span
}

const SIMPLE = ['app', 'ip', 'route', 'user'] as const

export function readKey(a: ArgCursor): ReadKey | undefined {
  if (!a.oneOf(['per'] as const, "'per'")) return undefined
  const w = a.word('a key: app, ip, route, user, header NAME, jwt.CLAIM or a combination like app+route')
  if (!w) return undefined
  const parts: KeyPart[] = []
  const names = w.text.split('+')
  for (let i = 0; i < names.length; i++) {
    const n = names[i]!
    if ((SIMPLE as readonly string[]).includes(n)) parts.push({ kind: n as (typeof SIMPLE)[number] })
    else if (n.startsWith('jwt.') && n.length > 4) parts.push({ kind: 'jwt', claim: n.slice(4) })
    else if (n === 'header' && i === names.length - 1) {
      const h = a.word('a header name')
      if (!h) return undefined
      parts.push({ kind: 'header', name: h.text.toLowerCase() })
    } else return a.fail('bad-key', `'${n}' is not a limit key: use app, ip, route, user, header NAME (last) or jwt.CLAIM, joined by +`, w.span)
  }
  const text = parts.map((p) => (p.kind === 'header' ? `header:${p.name}` : p.kind === 'jwt' ? `jwt:${p.claim}` : p.kind)).join('+')
  return { parts, text, span: w.span }
}

const NEEDS: Partial<Record<KeyPart['kind'], Binding>> = { app: 'app', user: 'user', jwt: 'jwt' }

// A key on the app, user or a claim needs a route whose `require` lines bind it; and with
// --workers the counters must be shared, which memory is not.
export function checkKey(key: ReadKey, what: string, ctx: CheckContext, at: Span): void {
  if (ctx.perWorkerStore)
    ctx.bag.error('needs-redis', `'${what}' needs --redis when the gateway runs --workers`, at, {
      message: 'each worker would count on its own, admitting up to N times the limit',
    })
  for (const p of key.parts) {
    const b = NEEDS[p.kind]
    if (b && !ctx.route.binds.has(b))
      ctx.bag.error(
        'unbound-' + b,
        `'${what} … per ${key.text}' needs a route that identifies the caller's ${b}; the route ${ctx.route.label} identifies none`,
        key.span,
        {
          message: b === 'app' ? 'add a require line before it: require hmac, require jwt, require mtls or require key' : 'add require jwt before it',
        },
      )
  }
}
