// `allow group NAME[, NAME…]`: only apps of these groups get through (403 otherwise).
import type { Span } from '../policy/source.ts'
import { didYouMean } from '../policy/diagnostics.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import { defineDirective, type CheckContext } from './define.ts'

// Names must exist, and the route must identify an app for the check to mean anything.
export function checkIdentityNames(
  kind: 'app' | 'group',
  names: { text: string; span: Span }[],
  known: ReadonlySet<string>,
  ctx: CheckContext,
  at: Span,
): void {
  if (!ctx.route.binds.has('app'))
    ctx.bag.error('unbound-app', `'allow ${kind}' needs a route that identifies the app; the route ${ctx.route.label} identifies none`, at, {
      message: 'add a require line before it: require hmac, require jwt, require mtls or require key',
    })
  for (const n of names) {
    if (known.has(n.text)) continue
    const near = didYouMean(n.text, known)
    ctx.bag.error(`unknown-${kind}`, `unknown ${kind} '${n.text}'`, n.span, ...(near ? [{ message: `did you mean '${near}'?` }] : []))
  }
}

export default defineDirective({
  name: 'allow group',
  stage: 'access',
  places: ['route', 'defaults'],
  usage: 'allow group NAME[, NAME…]',
  summary: 'Only apps of these groups get through (after a `require` line identified the caller); others get 403.',
  read(a) {
    const names = a.list(() => a.word('a group name'))
    a.end()
    return names && { names: names.map((n) => ({ text: n.text, span: n.span })) }
  },
  check(cfg, ctx, at) {
    checkIdentityNames('group', cfg.names, ctx.groups, ctx, at)
  },
  compile(cfg) {
    const allowed = new Set(cfg.names.map((n) => n.text))
    return function allowGroup(req) {
      const group = req.identity?.app?.group
      return group && allowed.has(group) ? undefined : new GatewayError('forbidden', "this app's group may not call this route")
    }
  },
})
