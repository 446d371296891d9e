// `quota N/hour|day|month per KEY`: at most N requests per UTC calendar hour, day or month
// (counters that reset when the period ends), decided with the route's throttles.
import { LimitGroup, type Calendar } from '../runtime/limits.ts'
import { defineDirective } from './define.ts'
import { checkKey, readKey, type ReadKey } from './limit-keys.ts'

interface QuotaConfig {
  limit: number
  calendar: Calendar
  key: ReadKey
}

const UNITS: Record<string, Calendar> = { h: 'hour', hr: 'hour', hour: 'hour', d: 'day', day: 'day', month: 'month' }

export default defineDirective<QuotaConfig, 'access'>({
  name: 'quota',
  stage: 'access',
  places: ['route', 'defaults'],
  usage: 'quota N/hour|day|month per KEY',
  summary: 'At most N requests per UTC calendar hour, day or month per key (as throttle); 429 quota_exceeded with Retry-After until the period ends.',
  describe: (cfg) => `quota ${cfg.limit}/${cfg.calendar} per ${cfg.key.text}`,
  read(a) {
    const t = a.peek()
    const m = t && /^(\d+)\/([a-z]+)$/.exec(t.text)
    const unit = m ? UNITS[m[2]!] : undefined
    if (!t || !m || !unit) return a.fail('bad-rate', 'a quota is N/hour, N/day or N/month (UTC calendar periods)', t?.span)
    a.expect([t.kind], 'a quota')
    const limit = Number(m[1])
    if (limit < 1) return a.fail('bad-argument', 'a quota must allow at least one request', t.span)
    const key = readKey(a)
    if (!key) return undefined
    a.end()
    return { limit, calendar: unit, key } satisfies QuotaConfig
  },
  check(cfg, ctx, at) {
    checkKey(cfg.key, 'quota', ctx, at)
  },
  compile(cfg, c) {
    const group = c.routeState('limits', () => new LimitGroup(c.route.id, c.store, c.tiers, c.now))
    group.add({
      source: 'quota',
      rate: { limit: cfg.limit, windowMs: 0 },
      burst: 0,
      calendar: cfg.calendar,
      key: cfg.key.parts,
      keyText: cfg.key.text,
    })
    c.afterAccess('limits', function limits(ctx) {
      return group.decide(ctx)
    })
    c.onEarlyAnswer('limits', function limitFields(ctx) {
      return group.peekHeaders(ctx)
    })
    return null
  },
})
