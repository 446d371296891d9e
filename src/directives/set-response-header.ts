import { safeHeaderValue } from '../runtime/headers.ts'
import { defineDirective } from './define.ts'
import { assignment, responseHeaderName } from './values.ts'

export default defineDirective({
  name: 'set response header',
  stage: 'response',
  places: ['route', 'defaults'],
  usage: 'set response header NAME = "value" | reference',
  summary: 'Sets (replaces) a header on the response the client gets.',
  read: (a) => assignment(a, responseHeaderName),
  check(cfg, ctx) {
    ctx.checkTemplate(cfg.value, 'text')
  },
  compile(cfg, ctx) {
    const name = cfg.name.toLowerCase()
    const value = ctx.template(cfg.value, 'text')
    return function setResponseHeader(req, headers) {
      const v = value(req)
      if (v === undefined) headers.delete(name)
      else headers.set(name, safeHeaderValue(v))
    }
  },
})
