import { defineDirective } from './define.ts'
import { responseHeaderName } from './values.ts'

export default defineDirective({
  name: 'remove response header',
  stage: 'response',
  places: ['route', 'defaults'],
  usage: 'remove response header NAME[, NAME…]',
  summary: 'Removes headers from the response the client gets (e.g. Server, X-Powered-By).',
  read(a) {
    const names = a.list(() => responseHeaderName(a))
    a.end()
    return names && { names: names.map((n) => n.toLowerCase()) }
  },
  compile(cfg) {
    const names = Object.freeze([...cfg.names])
    return function removeResponseHeader(_req, headers) {
      for (const n of names) headers.delete(n)
    }
  },
})
