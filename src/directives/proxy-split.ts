// The `split` form of `proxy`: `proxy split 90% stable, 10% canary [sticky KEY]`. Reading,
// checking and compiling it; the choice per request is src/runtime/split.ts.
import type { Arg } from '../policy/ast.ts'
import { parseUrl, type ArgCursor } from '../policy/cursor.ts'
import { joinSpans, type Span } from '../policy/source.ts'
import type { UpstreamPool } from '../runtime/upstream.ts'
import { BUCKETS, cookieValue, splitPicker, type StickyKey } from '../runtime/split.ts'
import type { RequestContext } from '../runtime/context.ts'
import type { CheckContext, CompileContext } from './define.ts'

export type Target = { name: string; span: Span } | { url: URL }

export interface SplitConfig {
  sides: { share: number; text: string; target: Target }[] // share in hundredths of a percent
  sticky: { kind: 'app' | 'user' | 'ip' | 'cookie' | 'header'; name?: string; span: Span } | null
}

const STICKY = ['app', 'user', 'ip', 'cookie', 'header'] as const

const targetText = (t: Target) => ('name' in t ? t.name : t.url.href)

// After `proxy split`: SHARE TARGET[, SHARE TARGET…] [sticky app|user|ip|cookie NAME|header NAME].
export function readSplit(a: ArgCursor, split: Arg): SplitConfig | undefined {
  const sides: SplitConfig['sides'] = []
  const spans: Span[] = []
  const items = a.list(() => {
    const n = a.peek()
    if (n?.kind === 'number') return a.fail('bad-split', `a share is a percentage: write ${n.text}%`, n.span)
    const p = a.expect(['percent'], 'a share like 90% and an upstream')
    if (!p) return undefined
    const share = Math.round(Number(p.text.slice(0, -1)) * 100)
    if (!/^\d+(\.\d{1,2})?%$/.test(p.text)) return a.fail('bad-split', `'${p.text}': a share has at most two decimals`, p.span)
    if (share === 0) return a.fail('bad-split', `'${p.text}': a side with no share never gets a request; remove it`, p.span)
    const t = a.expect(['word', 'url'], 'an upstream name or a URL')
    if (!t) return undefined
    let target: Target
    if (t.kind === 'url') {
      const url = parseUrl(t.text)
      if (!url) return a.fail('bad-url', `'${t.text}' is not a valid http(s) URL without query or credentials`, t.span)
      target = { url }
    } else target = { name: t.text, span: t.span }
    const prev = sides.findIndex((s) => targetText(s.target) === targetText(target))
    if (prev !== -1) return a.fail('bad-split', `'${t.text}' is already a side of this split: give it one share`, t.span)
    sides.push({ share, text: p.text, target })
    spans.push(joinSpans(p.span, t.span))
    return true
  })
  if (!items) return undefined
  const where = joinSpans(spans[0]!, spans[spans.length - 1]!)
  const total = sides.reduce((n, s) => n + s.share, 0)
  if (total !== BUCKETS) return a.fail('bad-split', `the shares of a split must add up to 100%; these add up to ${total / 100}%`, where)
  if (sides.length < 2)
    return a.fail('bad-split', `a split needs two sides or more; for one, write: proxy ${targetText(sides[0]!.target)}`, joinSpans(split.span, where))
  let sticky: SplitConfig['sticky'] = null
  const s = a.accept('sticky')
  if (s) {
    const kind = a.oneOf(STICKY, 'what keeps a caller on one side')
    if (!kind) return undefined
    sticky = { kind, span: joinSpans(s.span, a.peek(-1)!.span) }
    if (kind === 'cookie' || kind === 'header') {
      const n = a.word(`a ${kind} name`)
      if (!n) return undefined
      sticky.name = kind === 'header' ? n.text.toLowerCase() : n.text
      sticky.span = joinSpans(s.span, n.span)
    }
  }
  return { sides, sticky }
}

export function describeSplit(cfg: SplitConfig): string {
  const sides = cfg.sides.map((s) => `${s.text} ${targetText(s.target)}`).join(', ')
  return `proxy split ${sides}${cfg.sticky ? ` sticky ${cfg.sticky.kind}${cfg.sticky.name ? ` ${cfg.sticky.name}` : ''}` : ''}`
}

export function checkSplit(cfg: SplitConfig, ctx: CheckContext, checkName: (name: string, span: Span) => void): void {
  for (const s of cfg.sides) if ('name' in s.target) checkName(s.target.name, s.target.span)
  const needs = cfg.sticky?.kind === 'app' ? 'app' : cfg.sticky?.kind === 'user' ? 'user' : undefined
  if (needs && !ctx.route.binds.has(needs))
    ctx.bag.error(
      `unbound-${needs}`,
      `'sticky ${needs}' needs a route that identifies the caller's ${needs}; the route ${ctx.route.label} identifies none`,
      cfg.sticky!.span,
      {
        message:
          needs === 'app' ? 'add a require line: require hmac, require jwt, require mtls or require key' : 'add require session or require jwt',
      },
    )
}

function stickyKey(sticky: NonNullable<SplitConfig['sticky']>): StickyKey {
  const name = sticky.name ?? ''
  switch (sticky.kind) {
    case 'app':
      return (ctx) => ctx.identity?.app?.name
    case 'user':
      return (ctx) => ctx.identity?.user?.id
    case 'ip':
      return (ctx) => ctx.ip
    case 'header':
      return (ctx) => ctx.req.headers.get(name) || undefined
    case 'cookie':
      return (ctx) => cookieValue(ctx.req.headers.get('cookie'), name) || undefined
  }
}

// The pool for each request.
export function compileSplit(cfg: SplitConfig, ctx: CompileContext): { pools: UpstreamPool[]; pick: (req: RequestContext) => number } {
  const pools = cfg.sides.map((s) => ('name' in s.target ? ctx.upstream(s.target.name) : ctx.inlineUpstream(s.target.url)))
  const pick = splitPicker(
    cfg.sides.map((s, i) => ({ share: s.share, pool: pools[i]! })),
    cfg.sticky ? stickyKey(cfg.sticky) : null,
  )
  return { pools, pick }
}
