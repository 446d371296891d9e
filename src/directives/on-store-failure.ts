// `on store-failure allow|deny`: what the route's throttles and quotas do when the store does
// not answer within its timeout (by default throttles allow and quotas deny).
import { LimitGroup } from '../runtime/limits.ts'
import { defineDirective } from './define.ts'

export default defineDirective<{ policy: 'allow' | 'deny' }, 'access'>({
  name: 'on store-failure',
  stage: 'access',
  places: ['route', 'defaults'],
  usage: 'on store-failure allow | deny',
  summary: "When the store cannot decide a route's throttles and quotas: admit (allow) or answer 503 store_unavailable (deny).",
  describe: (cfg) => `on store-failure ${cfg.policy}`,
  read(a) {
    const policy = a.oneOf(['allow', 'deny'] as const, 'allow or deny')
    a.end()
    return policy && { policy }
  },
  compile(cfg, c) {
    c.routeState('limits', () => new LimitGroup(c.route.id, c.store, c.tiers, c.now)).onFailure(cfg.policy)
    // The decision is the throttles' own; this line only sets how it fails.
    return null
  },
})
