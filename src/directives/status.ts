import { GatewayError } from '../runtime/gateway-error.ts'
import { defineDirective } from './define.ts'

type StatusConfig = { kind: 'deprecated'; since?: number; sunset?: number } | { kind: 'blocked' } | { kind: 'retired' }

export default defineDirective({
  name: 'status',
  stage: 'access',
  places: ['route'],
  usage: 'status deprecated [since DATE] [sunset DATE] | blocked | retired',
  summary: 'Lifecycle: deprecated adds Deprecation/Sunset headers; blocked answers 503; retired answers 410.',
  read(a): StatusConfig | undefined {
    const kind = a.oneOf(['deprecated', 'blocked', 'retired'] as const, 'a status')
    if (kind !== 'deprecated') {
      a.end()
      return kind && { kind }
    }
    const cfg: StatusConfig = { kind }
    for (let word = a.peek(); word?.kind === 'word'; word = a.peek()) {
      const which = a.oneOf(['since', 'sunset'] as const, "'since DATE' or 'sunset DATE'")
      const when = which && a.date()
      if (when === undefined) return undefined
      cfg[which!] = when
    }
    a.end()
    return cfg
  },
  endsRequest: (cfg) => cfg.kind !== 'deprecated',
  compile(cfg) {
    if (cfg.kind === 'blocked')
      return function blocked() {
        return new GatewayError('blocked', 'this route is blocked')
      }
    if (cfg.kind === 'retired')
      return function retired() {
        return new GatewayError('retired', 'this route has been retired')
      }
    // RFC 9745: `Deprecation: @<unix seconds>`; RFC 8594: `Sunset: <HTTP-date>`.
    const headers: [string, string][] = [['deprecation', cfg.since === undefined ? 'true' : `@${Math.floor(cfg.since / 1000)}`]]
    if (cfg.sunset !== undefined) headers.push(['sunset', new Date(cfg.sunset).toUTCString()])
    Object.freeze(headers)
    return function deprecated(req) {
      req.responseHeaders = req.responseHeaders ? [...req.responseHeaders, ...headers] : [...headers]
      return undefined
    }
  },
})
