// Two routes conflict when one request could match both with the same precedence.
import type { DiagnosticBag } from '../policy/diagnostics.ts'
import { describeSpan } from '../policy/source.ts'
import type { CheckedRoute } from './check-program.ts'

function overlap(a: string[] | null, b: string[] | null): string[] {
  if (a === null) return b ?? ['*']
  if (b === null) return a
  return a.filter((m) => b.includes(m))
}

export function findConflicts(routes: CheckedRoute[], bag: DiagnosticBag): void {
  const groups = new Map<string, CheckedRoute[]>()
  for (const r of routes) {
    const key = `${r.host ?? ''}\0${r.pattern.shape}`
    const group = groups.get(key)
    if (!group) {
      groups.set(key, [r])
      continue
    }
    for (const prev of group) {
      const common = overlap(prev.methods, r.methods)
      if (common.length === 0) continue
      bag.error(
        'route-conflict',
        `route ${r.label} conflicts with ${prev.label} (${describeSpan(prev.patternSpan)}): both match ${common.join(', ')} ${r.patternText}${r.host ? ` on ${r.host}` : ''} with the same precedence`,
        r.patternSpan,
        { message: 'the other route is here', span: prev.patternSpan },
      )
    }
    group.push(r)
  }
}
