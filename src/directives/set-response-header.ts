import { safeHeaderValue } from '../runtime/headers.ts'
import { defineDirective } from './define.ts'
import { assignedValue, headerName } from './values.ts'

export default defineDirective({
  name: 'set response header',
  stage: 'response',
  places: ['route', 'defaults'],
  usage: 'set response header NAME = "value" | reference',
  summary: 'Sets (replaces) a header on the response the client gets.',
  read(a) {
    const name = headerName(a)
    const value = name === undefined ? undefined : assignedValue(a)
    a.end()
    return name === undefined || value === undefined ? undefined : { name, value }
  },
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
