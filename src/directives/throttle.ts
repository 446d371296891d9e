// `throttle N/unit per KEY [burst M]` and `throttle tier per app`: at most N requests in any
// window of the unit (an exact sliding window, shared by every instance on one Redis); with
// `burst M`, also at most M in any M/N of the window. All throttles and quotas of a route are
// decided together (src/runtime/limits.ts).
import { LimitGroup } from '../runtime/limits.ts'
import { defineDirective } from './define.ts'
import { checkKey, readKey, type ReadKey } from './limit-keys.ts'

interface ThrottleConfig {
  rate: { limit: number; windowMs: number } | 'tier'
  burst: number
  key: ReadKey
}

export default defineDirective<ThrottleConfig, 'access'>({
  name: 'throttle',
  stage: 'access',
  places: ['route', 'defaults'],
  usage: 'throttle RATE | tier per KEY [burst N]',
  summary:
    'At most RATE requests in any window of its unit per key (app, ip, route, user, header NAME, jwt.CLAIM, or a+b), exact and shared through the store; 429 with Retry-After, RateLimit headers on every answer.',
  describe: (cfg) => `throttle ${cfg.rate === 'tier' ? 'tier' : `${cfg.rate.limit}/${cfg.rate.windowMs / 1000}s`} per ${cfg.key.text}`,
  read(a) {
    const rate = a.accept('tier') ? 'tier' : a.rate()
    if (!rate) return undefined
    const key = readKey(a)
    if (!key) return undefined
    let burst = 0
    if (a.accept('burst')) {
      if (rate === 'tier') return a.fail('bad-argument', "a tier has its own burst: 'burst' goes on the tier line", a.peek()?.span)
      const b = a.integer('a burst', 1, rate.limit)
      if (b === undefined) return undefined
      burst = b
    }
    a.end()
    return { rate: rate === 'tier' ? 'tier' : { limit: rate.limit, windowMs: rate.windowMs }, burst, key } satisfies ThrottleConfig
  },
  check(cfg, ctx, at) {
    checkKey(cfg.key, 'throttle', ctx, at)
    if (cfg.rate === 'tier' && !cfg.key.parts.some((p) => p.kind === 'app'))
      ctx.bag.error('bad-key', "'throttle tier' takes the identified app's tier: its key must include app", at)
  },
  compile(cfg, c) {
    const group = c.routeState('limits', () => new LimitGroup(c.route.id, c.store, c.tiers, c.now))
    group.add({ source: 'throttle', rate: cfg.rate, burst: cfg.burst, calendar: null, key: cfg.key.parts, keyText: cfg.key.text })
    c.afterAccess('limits', function limits(ctx) {
      return group.decide(ctx)
    })
    c.onEarlyAnswer('limits', function limitFields(ctx) {
      return group.peekHeaders(ctx)
    })
    return null
  },
})
