// An upstream: its targets, the balancer that picks one, and its timeout.
export interface Target {
  base: string // scheme://host:port + base path without trailing slash
  origin: string
  weight: number
}

export interface UpstreamPool {
  readonly name: string
  readonly timeoutMs: number
  next(): Target
}

export const DEFAULT_UPSTREAM_TIMEOUT_MS = 60_000

export function targetOf(url: URL, weight = 1): Target {
  const path = url.pathname.replace(/\/+$/, '')
  return { base: `${url.protocol}//${url.host}${path}`, origin: `${url.protocol}//${url.host}`, weight }
}

// Smooth weighted round robin (nginx): spreads a heavier target's turns evenly.
export function roundRobin(name: string, targets: readonly Target[], timeoutMs: number): UpstreamPool {
  const list = Object.freeze([...targets])
  const current = list.map(() => 0)
  const total = list.reduce((s, t) => s + t.weight, 0)
  if (list.length === 1) {
    const only = list[0]!
    return { name, timeoutMs, next: () => only }
  }
  return {
    name,
    timeoutMs,
    next() {
      let best = 0
      for (let i = 0; i < list.length; i++) {
        current[i]! += list[i]!.weight
        if (current[i]! > current[best]!) best = i
      }
      current[best]! -= total
      return list[best]!
    },
  }
}
