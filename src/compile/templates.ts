// Templates at compile time: a getter (the checker has checked them with policy/template.ts).
import { compileReference, type TemplateMode } from '../policy/references.ts'
import type { Template } from '../policy/template.ts'
import type { RequestContext } from '../runtime/context.ts'

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
