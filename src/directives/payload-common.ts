// What `encrypt response`, `decrypt request` and `sign response` share: a `max SIZE` option
// and the check that the route identifies an app (whose keys they use).
import type { ArgCursor } from '../policy/cursor.ts'
import type { Span } from '../policy/source.ts'
import type { CheckContext } from './define.ts'

// `max SIZE`: the most the directive buffers; null when not given, undefined after an error.
export function readMax(a: ArgCursor): number | null | undefined {
  if (!a.accept('max')) return null
  const at = a.peek()?.span
  const bytes = a.size()
  if (bytes === undefined) return undefined
  if (bytes <= 0) return a.fail('bad-argument', 'max must be more than 0 bytes', at)
  return bytes
}

export function checkBoundApp(what: string, ctx: CheckContext, at: Span): void {
  if (!ctx.route.binds.has('app'))
    ctx.bag.error('unbound-app', `'${what}' needs a route that identifies the app; the route ${ctx.route.label} identifies none`, at, {
      message: "add a require line before it (require hmac, require key, require mtls or require jwt): its keys are the app's",
    })
}
