// What a reload changed: routes by id, upstreams and file apps by name, from the fingerprints
// each program carries (compile/summary.ts makes them).
import type { ProgramParts } from './program.ts'

export interface Changes {
  added: string[]
  removed: string[]
  changed: string[]
}

export interface ReloadChanges {
  routes: Changes
  upstreams: Changes
  apps: Changes
}

function compare(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): Changes {
  const added = [...after.keys()].filter((k) => !before.has(k))
  const removed = [...before.keys()].filter((k) => !after.has(k))
  const changed = [...after].filter(([k, v]) => before.has(k) && before.get(k) !== v).map(([k]) => k)
  return { added, removed, changed }
}

export function programChanges(before: ProgramParts, after: ProgramParts): ReloadChanges {
  return {
    routes: compare(before.routes, after.routes),
    upstreams: compare(before.upstreams, after.upstreams),
    apps: compare(before.apps, after.apps),
  }
}

// `routes +2 -1 ~1 (…); upstreams ~1 (orders)`, or `no changes`.
export function describeChanges(c: ReloadChanges): string {
  const parts: string[] = []
  for (const kind of ['routes', 'upstreams', 'apps'] as const) {
    const { added, removed, changed } = c[kind]
    const items = [...added.map((n) => `+${n}`), ...removed.map((n) => `-${n}`), ...changed.map((n) => `~${n}`)]
    if (items.length) parts.push(`${kind} ${items.join(', ')}`)
  }
  return parts.length ? parts.join('; ') : 'no changes'
}
