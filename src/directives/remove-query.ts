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
      if (!req.rawQuery && !req.upstreamQuery) return undefined
      const q = (req.upstreamQuery ??= new URLSearchParams(req.rawQuery))
      for (const n of names) q.delete(n)
      return undefined
    }
  },
})
