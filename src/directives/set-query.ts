import { removeParam, setParam } from '../runtime/query.ts'
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
      const raw = req.upstreamQuery ?? req.rawQuery
      const v = value(req)
      // An absent reference removes the parameter rather than sending an empty one.
      req.upstreamQuery = v === undefined ? removeParam(raw, name) : setParam(raw, name, v)
      return undefined
    }
  },
})
