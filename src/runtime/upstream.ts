// An upstream at request time: its targets, the balancer that picks one, retries, and the
// health of each target (active probes and passive failure counting). Health lives outside
// the program, keyed by upstream and target, so a reload keeps what was learnt.
import { originOf, UpstreamFailure, type Origin, type Timeouts } from './client/client.ts'
import { exchange } from './client/socket-client.ts'
import { event, warn } from '../log/events.ts'

export interface TargetState {
  up: boolean // the active checks' verdict
  fails: number // consecutive passive failures
  ejectedUntil: number // performance.now() until which passive failures keep it out
  active: number // requests waiting for this target's answer, for least-conn
  // Counted for /metrics: tries sent here, those that failed (no answer, or 502/503/504),
  // and those that were retries of a request another try failed.
  attempts: number
  failures: number
  retries: number
}

export interface Target {
  readonly origin: string // scheme://host:port, as logged
  readonly conn: Origin
  readonly basePath: string // '' or '/base', no trailing slash
  readonly weight: number
  readonly state: TargetState
}

export interface RetryPolicy {
  count: number
  on: { connectError: boolean; timeout: boolean; statuses: number[] }
  withinMs?: number // every try and back-off ends by then; default: the upstream's timeout
}

export interface HealthCheck {
  method: 'GET' | 'HEAD' | 'OPTIONS'
  path: string
  everyMs: number
  timeoutMs: number
  fails: number // consecutive failures that take a target out
  passes: number // consecutive successes that bring it back
}

export interface PassiveHealth {
  fails: number // consecutive failed tries that eject a target
  cooldownMs: number // how long it stays out (an active probe that passes ends it sooner)
}

export interface UpstreamSpec {
  name: string
  targets: { url: URL; weight: number }[]
  timeouts: Timeouts
  balance: 'round-robin' | 'least-conn'
  retry: RetryPolicy | null
  retryUnsafe: boolean
  health: HealthCheck | null
  passive: PassiveHealth | null
  probes?: boolean // false: no active checks from this process (the --workers primary)
}

export interface UpstreamPool {
  readonly name: string
  readonly targets: readonly Target[]
  readonly timeouts: Timeouts
  readonly retry: RetryPolicy | null
  readonly retryUnsafe: boolean
  // A target, preferring available ones not in `tried`; when none is available, any
  // (Envoy's panic mode: better a try than a certain 503).
  next(tried?: ReadonlySet<Target>): Target
  // The outcome of one try, for passive health.
  report(t: Target, failed: boolean): void
  dispose(): void
}

export const DEFAULT_TIMEOUTS: Timeouts = Object.freeze({ connectMs: 5_000, headersMs: 60_000, idleMs: 60_000 })
export const DEFAULT_PASSIVE: PassiveHealth = Object.freeze({ fails: 5, cooldownMs: 10_000 })

const states = new Map<string, TargetState>()

function stateOf(upstream: string, key: string): TargetState {
  const id = `${upstream} ${key}`
  let s = states.get(id)
  if (!s) states.set(id, (s = { up: true, fails: 0, ejectedUntil: 0, active: 0, attempts: 0, failures: 0, retries: 0 }))
  return s
}

function targetOf(upstream: string, url: URL, weight = 1): Target {
  const conn = originOf(url)
  const basePath = url.pathname.replace(/\/+$/, '')
  return { origin: conn.key, conn, basePath, weight, state: stateOf(upstream, `${conn.key}${basePath}`) }
}

export const available = (t: Target, now: number) => t.state.up && t.state.ejectedUntil <= now

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
    for (const t of candidates) min = Math.min(min, t.state.active / t.weight)
    return rr(candidates.filter((t) => t.state.active / t.weight === min))
  }
}

async function probeOnce(t: Target, check: HealthCheck): Promise<boolean> {
  try {
    const { response } = await exchange({
      origin: t.conn,
      method: check.method,
      target: `${t.basePath}${check.path}`,
      headerLines: 'user-agent: portcullis-health-check\r\n',
      body: null,
      length: null,
      bodyLimit: 0,
      replayable: true,
      timeouts: { connectMs: check.timeoutMs, headersMs: check.timeoutMs, idleMs: check.timeoutMs },
    })
    await response.body?.cancel()
    return response.status < 400
  } catch (err) {
    if (!(err instanceof UpstreamFailure)) throw err
    return false
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
      const ok = await probeOnce(t, check)
      running = false
      const s = t.state
      if (ok) {
        fails = 0
        if (s.ejectedUntil > performance.now()) {
          s.ejectedUntil = 0
          s.fails = 0
          event('health', `upstream ${name}: ${t.origin} passed a health check; back in the rotation`, {
            upstream: name,
            target: t.origin,
            healthy: true,
          })
        }
        if (!s.up && ++passes >= check.passes) {
          s.up = true
          event('health', `upstream ${name}: ${t.origin} is healthy again`, { upstream: name, target: t.origin, healthy: true })
        }
      } else {
        passes = 0
        if (s.up && ++fails >= check.fails) {
          s.up = false
          warn('health', `upstream ${name}: ${t.origin} failed ${fails} health checks; out of the rotation`, {
            upstream: name,
            target: t.origin,
            healthy: false,
          })
        }
      }
    }
    // At once, so a target that is down at start-up is known before the first interval.
    void probe()
    const timer = setInterval(() => void probe(), check.everyMs)
    timer.unref()
    return timer
  })
  return () => timers.forEach(clearInterval)
}

export function createPool(spec: UpstreamSpec): UpstreamPool {
  const targets = Object.freeze(spec.targets.map((t) => targetOf(spec.name, t.url, t.weight)))
  const pick = spec.balance === 'least-conn' ? leastConn(targets) : smoothRoundRobin(targets)
  const stopChecks = spec.health && spec.probes !== false ? startHealthChecks(spec.name, targets, spec.health) : () => {}
  const only = targets.length === 1 ? targets[0]! : null
  const passive = spec.passive
  let panicking = false
  return {
    name: spec.name,
    targets,
    timeouts: spec.timeouts,
    retry: spec.retry,
    retryUnsafe: spec.retryUnsafe,
    next(tried) {
      if (only) return only
      const now = performance.now()
      let candidates: readonly Target[] = targets.filter((t) => available(t, now))
      if (candidates.length === 0) {
        if (!panicking)
          warn('health', `upstream ${spec.name}: no target is healthy; trying them all (panic mode)`, { upstream: spec.name, panic: true })
        panicking = true
        candidates = targets
      } else panicking = false
      const fresh = tried && tried.size > 0 ? candidates.filter((t) => !tried.has(t)) : candidates
      return pick(fresh.length > 0 ? fresh : candidates)
    },
    report(t, failed) {
      if (!passive) return
      const s = t.state
      if (!failed) {
        s.fails = 0
        return
      }
      if (++s.fails >= passive.fails && s.ejectedUntil <= performance.now()) {
        s.ejectedUntil = performance.now() + passive.cooldownMs
        warn('health', `upstream ${spec.name}: ${t.origin} failed ${s.fails} tries in a row; out of the rotation for ${passive.cooldownMs / 1000}s`, {
          upstream: spec.name,
          target: t.origin,
          healthy: false,
        })
      }
    },
    dispose: stopChecks,
  }
}
