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
  // The client's own values are dropped at compile time (as for any name a route owns);
  // at request time this undoes a `set header` of the same name that ran before it.
  setsHeaders: (cfg) => cfg.names.map(canonicalName),
  compile(cfg) {
    const names = Object.freeze([...cfg.names])
    return function removeHeader(req) {
      for (const name of names) req.setUpstreamHeader(name, null)
      return undefined
    }
  },
})
