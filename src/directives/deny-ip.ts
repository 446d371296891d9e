import { GatewayError } from '../runtime/gateway-error.ts'
import { ipMatcher } from '../runtime/ip.ts'
import { defineDirective } from './define.ts'

export default defineDirective({
  name: 'deny ip',
  stage: 'access',
  places: ['route', 'defaults'],
  usage: 'deny ip CIDR[, CIDR…]',
  summary: 'Callers from these addresses or ranges get 403.',
  read(a) {
    const cidrs = a.list(() => a.cidr())
    a.end()
    return cidrs && { cidrs }
  },
  compile(cfg) {
    // Fail closed: an address that cannot be read counts as denied.
    const denied = ipMatcher(cfg.cidrs, true)
    return function denyIp(req) {
      return denied(req.ip) ? new GatewayError('forbidden', 'your address may not call this route') : undefined
    }
  },
})
