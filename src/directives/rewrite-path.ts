import { GatewayError } from '../runtime/gateway-error.ts'
import { normalizedPath } from '../runtime/normalize.ts'
import { defineDirective } from './define.ts'

export default defineDirective({
  name: 'rewrite path',
  stage: 'rewrite',
  places: ['route'],
  usage: 'rewrite path /new/{capture}/path',
  summary: "Builds the upstream path from the route's captures; the query is kept.",
  read(a) {
    const arg = a.expect(['path', 'string'], 'a path template starting with /')
    a.end()
    if (!arg) return undefined
    const template = a.template(arg)
    const text = arg.kind === 'string' ? arg.text.slice(1, -1) : arg.text
    if (!text.startsWith('/')) return a.fail('bad-argument', 'a rewritten path must start with /', arg.span)
    if (/[?#]/.test(text)) return a.fail('bad-argument', "a rewritten path cannot carry a query or fragment; use 'set query'", arg.span)
    return { template }
  },
  check(cfg, ctx) {
    ctx.checkTemplate(cfg.template, 'path')
  },
  compile(cfg, ctx) {
    const build = ctx.template(cfg.template, 'path')
    // Captures are normalised segments, never `.` or `..`; normalising again keeps it that way.
    return function rewritePath(req) {
      const path = normalizedPath(build(req) ?? '/')
      if (path === null) return new GatewayError('bad_request', 'the rewritten path is malformed')
      req.upstreamPath = path
      return undefined
    }
  },
})
