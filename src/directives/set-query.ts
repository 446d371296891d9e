import { defineDirective } from './define.ts'
import { assignment, queryName } from './values.ts'

export default defineDirective({
  name: 'set query',
  stage: 'rewrite',
  places: ['route', 'defaults'],
  usage: 'set query NAME = "value" | reference',
  summary: 'Sets (replaces) a query parameter of the upstream request.',
  read: (a) => assignment(a, queryName),
  check(cfg, ctx) {
    ctx.checkTemplate(cfg.value, 'text')
  },
  compile(cfg, ctx) {
    const value = ctx.template(cfg.value, 'text')
    const name = cfg.name
    return function setQuery(req) {
      const q = (req.upstreamQuery ??= new URLSearchParams(req.rawQuery))
      const v = value(req)
      if (v === undefined) q.delete(name)
      else q.set(name, v)
      return undefined
    }
  },
})
