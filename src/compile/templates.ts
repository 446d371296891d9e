// Templates at check time (every reference known here?) and compile time (a getter).
import type { RouteInfo, TemplateMode } from '../directives/define.ts'
import type { DiagnosticBag } from '../policy/diagnostics.ts'
import type { Template } from '../policy/template.ts'
import type { RequestContext } from '../runtime/context.ts'
import { checkReference, compileReference } from './references.ts'

export function checkTemplate(t: Template, mode: TemplateMode, route: RouteInfo, bag: DiagnosticBag): void {
  for (const p of t.parts) {
    if (typeof p === 'string') continue
    if (p.rest) {
      const capture = route.params.get(p.ref)
      if (mode !== 'path') bag.error('bad-reference', `'{${p.ref}*}' only makes sense in a path; write '{${p.ref}}' here`, p.span)
      else if (!capture?.rest) bag.error('bad-reference', `the route ${route.label} has no rest capture '{${p.ref}*}'`, p.span)
      continue
    }
    const problem = checkReference(p.ref, route)
    if (problem) bag.error('unknown-reference', problem, p.span)
  }
}

type Getter = (ctx: RequestContext) => string | undefined

// In a path, captures are already percent-encoded segments (a rest capture keeps its
// slashes); every other value is encoded as one segment so it cannot add `/` or `..`.
export function compileTemplate(t: Template, mode: TemplateMode): Getter {
  const parts = t.parts.map((p): string | Getter => {
    if (typeof p === 'string') return p
    const get = compileReference(p.ref, mode)
    const isCapture = !p.ref.includes('.') || p.ref.startsWith('param.')
    if (mode === 'path' && !isCapture)
      return (ctx) => {
        const v = get(ctx)
        return v === undefined ? undefined : encodeURIComponent(v)
      }
    return get
  })
  if (parts.length === 1 && typeof parts[0] !== 'string') return parts[0]!
  if (parts.every((p) => typeof p === 'string')) {
    const text = parts.join('')
    return () => text
  }
  return function template(ctx) {
    let out = ''
    for (const p of parts) out += typeof p === 'string' ? p : (p(ctx) ?? '')
    return out
  }
}
