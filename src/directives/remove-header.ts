import { canonicalName } from '../runtime/headers.ts'
import { defineDirective } from './define.ts'
import { headerName } from './values.ts'

export default defineDirective({
  name: 'remove header',
  stage: 'rewrite',
  places: ['route', 'defaults'],
  usage: 'remove header NAME[, NAME…]',
  summary: 'Removes request headers before proxying (any `_`/`.` spelling of the name too).',
  read(a) {
    const names = a.list(() => headerName(a))
    a.end()
    return names && { names }
  },
  compile(cfg) {
    const remove = new Set(cfg.names.map(canonicalName))
    return function removeHeader(req) {
      const doomed: string[] = []
      for (const name of req.upstreamHeaders.keys()) if (remove.has(canonicalName(name))) doomed.push(name)
      for (const name of doomed) req.upstreamHeaders.delete(name)
      return undefined
    }
  },
})
