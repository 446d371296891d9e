import { removeParams } from '../runtime/query.ts'
import { defineDirective } from './define.ts'
import { queryName } from './values.ts'

export default defineDirective({
  name: 'remove query',
  stage: 'rewrite',
  places: ['route', 'defaults'],
  usage: 'remove query NAME[, NAME…]',
  summary: 'Removes query parameters from the upstream request.',
  read(a) {
    const names = a.list(() => queryName(a))
    a.end()
    return names && { names }
  },
  compile(cfg) {
    const names = Object.freeze([...cfg.names])
    return function removeQuery(req) {
      const raw = req.upstreamQuery ?? req.rawQuery
      const edited = removeParams(raw, names)
      if (edited !== raw) req.upstreamQuery = edited
      return undefined
    }
  },
})
