import { canonicalName, safeHeaderValue } from '../runtime/headers.ts'
import { defineDirective } from './define.ts'
import { assignment, headerName } from './values.ts'

export default defineDirective({
  name: 'set header',
  stage: 'rewrite',
  places: ['route', 'defaults'],
  usage: 'set header NAME = "value {param.id}" | reference',
  summary: 'Sets (replaces) a request header sent upstream; clients cannot send it themselves in any spelling.',
  read: (a) => assignment(a, headerName),
  setsHeaders: (cfg) => [canonicalName(cfg.name)],
  check(cfg, ctx) {
    ctx.checkTemplate(cfg.value, 'text')
  },
  compile(cfg, ctx) {
    const name = cfg.name.toLowerCase()
    const value = ctx.template(cfg.value, 'text')
    return function setHeader(req) {
      const v = value(req)
      req.setUpstreamHeader(name, v === undefined ? null : safeHeaderValue(v))
      return undefined
    }
  },
})
