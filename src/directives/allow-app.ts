// `allow app NAME[, NAME…]`: only these apps, once identified, get through (403 otherwise).
import { GatewayError } from '../runtime/gateway-error.ts'
import { defineDirective } from './define.ts'
import { checkIdentityNames } from './allow-group.ts'

export default defineDirective({
  name: 'allow app',
  stage: 'access',
  places: ['route', 'defaults'],
  usage: 'allow app NAME[, NAME…]',
  summary: 'Only these apps get through (after a `require` line identified the caller); others get 403.',
  read(a) {
    const names = a.list(() => a.word('an app name'))
    a.end()
    return names && { names: names.map((n) => ({ text: n.text, span: n.span })) }
  },
  check(cfg, ctx, at) {
    checkIdentityNames('app', cfg.names, ctx.apps, ctx, at)
  },
  compile(cfg) {
    const allowed = new Set(cfg.names.map((n) => n.text))
    return function allowApp(req) {
      const app = req.identity?.app
      return app && allowed.has(app.name) ? undefined : new GatewayError('forbidden', 'this app may not call this route')
    }
  },
})
