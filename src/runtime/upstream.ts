// An upstream at request time: its targets, the balancer that picks one, retries and
// active health checks that take failing targets out of the rotation.
export interface Target {
  readonly base: string // scheme://host:port + base path without trailing slash
  readonly origin: string
  readonly weight: number
  healthy: boolean
  active: number // requests waiting for this target's answer, for least-conn
}

export interface RetryPolicy {
  count: number
  on: { connectError: boolean; timeout: boolean; statuses: number[] }
}

export interface HealthCheck {
  method: 'GET' | 'HEAD' | 'OPTIONS'
  path: string
  everyMs: number
  timeoutMs: number
  fails: number // consecutive failures that take a target out
  passes: number // consecutive successes that bring it back
}

export interface UpstreamSpec {
  name: string
  targets: { url: URL; weight: number }[]
  timeoutMs: number
  balance: 'round-robin' | 'least-conn'
  retry: RetryPolicy | null
  retryUnsafe: boolean
  health: HealthCheck | null
}

export interface UpstreamPool {
  readonly name: string
  readonly timeoutMs: number
  readonly retry: RetryPolicy | null
  readonly retryUnsafe: boolean
  // A healthy target, preferring ones not in `tried`; null when none is healthy.
  next(tried?: ReadonlySet<Target>): Target | null
  dispose(): void
}

export const DEFAULT_UPSTREAM_TIMEOUT_MS = 60_000

export function targetOf(url: URL, weight = 1): Target {
  const path = url.pathname.replace(/\/+$/, '')
  return { base: `${url.protocol}//${url.host}${path}`, origin: `${url.protocol}//${url.host}`, weight, healthy: true, active: 0 }
}

type Pick = (candidates: readonly Target[]) => Target

// Smooth weighted round robin (nginx): spreads a heavier target's turns evenly.
function smoothRoundRobin(all: readonly Target[]): Pick {
  const current = new Map<Target, number>(all.map((t) => [t, 0]))
  return (candidates) => {
    let best = candidates[0]!
    let total = 0
    for (const t of candidates) {
      const c = current.get(t)! + t.weight
      current.set(t, c)
      total += t.weight
      if (c > current.get(best)!) best = t
    }
    current.set(best, current.get(best)! - total)
    return best
  }
}

// Fewest requests in flight per unit of weight; ties go round robin.
function leastConn(all: readonly Target[]): Pick {
  const rr = smoothRoundRobin(all)
  return (candidates) => {
    let min = Infinity
    for (const t of candidates) min = Math.min(min, t.active / t.weight)
    return rr(candidates.filter((t) => t.active / t.weight === min))
  }
}

function startHealthChecks(name: string, targets: readonly Target[], check: HealthCheck): () => void {
  const timers = targets.map((t) => {
    let fails = 0
    let passes = 0
    let running = false
    const probe = async () => {
      if (running) return
      running = true
      let ok = false
      try {
        const res = await fetch(`${t.base}${check.path}`, { method: check.method, redirect: 'manual', signal: AbortSignal.timeout(check.timeoutMs) })
        await res.body?.cancel()
        ok = res.status < 400
      } catch {}
      running = false
      if (ok) {
        fails = 0
        if (!t.healthy && ++passes >= check.passes) {
          t.healthy = true
          console.error(`portcullis: upstream ${name}: ${t.origin} is healthy again`)
        }
      } else {
        passes = 0
        if (t.healthy && ++fails >= check.fails) {
          t.healthy = false
          console.error(`portcullis: upstream ${name}: ${t.origin} failed ${fails} health checks; out of the rotation`)
        }
      }
    }
    void probe()
    const timer = setInterval(() => void probe(), check.everyMs)
    timer.unref()
    return timer
  })
  return () => timers.forEach(clearInterval)
}

export function createPool(spec: UpstreamSpec): UpstreamPool {
  const targets = Object.freeze(spec.targets.map((t) => targetOf(t.url, t.weight)))
  const pick = spec.balance === 'least-conn' ? leastConn(targets) : smoothRoundRobin(targets)
  const stopChecks = spec.health ? startHealthChecks(spec.name, targets, spec.health) : () => {}
  const only = targets.length === 1 && !spec.health ? targets[0]! : null
  return {
    name: spec.name,
    timeoutMs: spec.timeoutMs,
    retry: spec.retry,
    retryUnsafe: spec.retryUnsafe,
    next(tried) {
      if (only) return only
      const healthy = targets.filter((t) => t.healthy)
      if (healthy.length === 0) return null
      const fresh = tried && tried.size > 0 ? healthy.filter((t) => !tried.has(t)) : healthy
      return pick(fresh.length > 0 ? fresh : healthy)
    },
    dispose: stopChecks,
  }
}
