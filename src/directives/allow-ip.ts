import { GatewayError } from '../runtime/gateway-error.ts'
import { ipMatcher } from '../runtime/ip.ts'
import { defineDirective } from './define.ts'

export default defineDirective({
  name: 'allow ip',
  stage: 'access',
  places: ['route', 'defaults'],
  usage: 'allow ip CIDR[, CIDR…]',
  summary: 'Only callers from these addresses or ranges (IPv4/IPv6) get through; others get 403.',
  read(a) {
    const cidrs = a.list(() => a.cidr())
    a.end()
    return cidrs && { cidrs }
  },
  compile(cfg) {
    const allowed = ipMatcher(cfg.cidrs)
    return function allowIp(req) {
      return allowed(req.ip) ? undefined : new GatewayError('forbidden', 'your address may not call this route')
    }
  },
})
