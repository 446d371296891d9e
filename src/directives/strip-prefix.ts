import { defineDirective } from './define.ts'

export default defineDirective({
  name: 'strip prefix',
  stage: 'rewrite',
  places: ['route', 'defaults'],
  usage: 'strip prefix /api',
  summary: 'Removes a leading path prefix (whole segments only) before proxying.',
  read(a) {
    const arg = a.expect(['path'], 'a path prefix like /api')
    a.end()
    if (!arg) return undefined
    if (arg.text.includes('{')) return a.fail('bad-argument', 'a prefix is literal: it cannot hold {captures}', arg.span)
    return { prefix: arg.text.replace(/\/+$/, '') }
  },
  compile(cfg) {
    const prefix = cfg.prefix
    return function stripPrefix(req) {
      const p = req.upstreamPath
      if (prefix === '' || !p.startsWith(prefix)) return undefined
      const rest = p.slice(prefix.length)
      if (rest === '') req.upstreamPath = '/'
      else if (rest.startsWith('/')) req.upstreamPath = rest
      return undefined
    }
  },
})
