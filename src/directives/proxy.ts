import { parseUrl, type ArgCursor } from '../policy/cursor.ts'
import { didYouMean } from '../policy/diagnostics.ts'
import type { Span } from '../policy/source.ts'
import { proxyTo } from '../runtime/proxy.ts'
import { proxyWebSocket } from '../runtime/websocket.ts'
import type { TerminalFn } from '../runtime/context.ts'
import { defineDirective, type CheckContext, type CompileContext } from './define.ts'
import { checkSplit, compileSplit, describeSplit, readSplit, type SplitConfig } from './proxy-split.ts'

// One upstream, or (`proxy split`) several sides, each with its share.
type ProxyConfig = { upstream: { name: string; span: Span } | { url: URL } | null; split?: SplitConfig; timeoutMs?: number; websocket?: boolean }

function checkUpstreamName(name: string, span: Span, ctx: CheckContext): void {
  if (ctx.upstreams.has(name)) return
  const near = didYouMean(name, ctx.upstreams)
  const hint = near
    ? `did you mean '${near}'?`
    : ctx.upstreams.size
      ? `upstreams: ${[...ctx.upstreams].join(', ')}`
      : 'declare it with: upstream NAME { target URL }'
  ctx.bag.error('unknown-upstream', `unknown upstream '${name}'`, span, { message: hint })
}

export default defineDirective({
  name: 'proxy',
  stage: 'proxy',
  terminal: true,
  places: ['route'],
  usage:
    'proxy UPSTREAM | http://host:port[/base] | split N% UPSTREAM, M% UPSTREAM… [sticky app|user|ip|cookie NAME|header NAME] [timeout DURATION] [websocket]',
  summary:
    'Forwards the request to a named upstream or a URL, streaming both ways; 502 when unreachable, 504 when it does not answer in time. `split` sends shares of the traffic to several upstreams (canaries), sticky by a key.',
  read(a): ProxyConfig | undefined {
    // `proxy split 90% a, 10% b`; an upstream named `split` still reads as one.
    const next = a.peek(1)
    if (a.peek()?.text === 'split' && next && !(next.kind === 'word' && (next.text === 'timeout' || next.text === 'websocket'))) {
      const split = readSplit(a, a.word()!)
      return split && options(a, { upstream: null, split })
    }
    const arg = a.expect(['word', 'url'], 'an upstream name or a URL')
    if (!arg) return undefined
    let upstream: ProxyConfig['upstream']
    if (arg.kind === 'url') {
      const url = parseUrl(arg.text)
      if (!url) return a.fail('bad-url', `'${arg.text}' is not a valid http(s) URL without query or credentials`, arg.span)
      upstream = { url }
    } else upstream = { name: arg.text, span: arg.span }
    return options(a, { upstream })
  },
  describe(cfg) {
    const up = cfg.upstream
    const what = cfg.split ? describeSplit(cfg.split) : `proxy ${up && 'name' in up ? up.name : up?.url.href}`
    return `${what}${cfg.websocket ? ' websocket' : ''}`
  },
  check(cfg, ctx) {
    if (cfg.split) checkSplit(cfg.split, ctx, (name, span) => checkUpstreamName(name, span, ctx))
    else if (cfg.upstream && 'name' in cfg.upstream) checkUpstreamName(cfg.upstream.name, cfg.upstream.span, ctx)
  },
  compile(cfg, ctx) {
    if (cfg.split) return compileProxySplit(cfg, cfg.split, ctx)
    const up = cfg.upstream!
    const pool = 'name' in up ? ctx.upstream(up.name) : ctx.inlineUpstream(up.url)
    // `proxy … timeout D` bounds the wait for the answer and each silence within it.
    const timeouts = cfg.timeoutMs === undefined ? pool.timeouts : { ...pool.timeouts, headersMs: cfg.timeoutMs, idleMs: cfg.timeoutMs }
    if (cfg.websocket)
      return function proxyWithWebSocket(req) {
        return req.upgrade ? proxyWebSocket(req, pool, timeouts) : proxyTo(req, pool, timeouts)
      }
    return function proxy(req) {
      return proxyTo(req, pool, timeouts)
    }
  },
})

function options(a: ArgCursor, cfg: ProxyConfig): ProxyConfig | undefined {
  if (a.accept('timeout')) {
    const ms = a.duration()
    if (ms === undefined) return undefined
    cfg.timeoutMs = ms
  }
  if (a.accept('websocket')) cfg.websocket = true
  a.end()
  return cfg
}

// Each request goes to the side its bucket names (src/runtime/split.ts), with that upstream's
// timeouts, retries and health: a failing side answers with its own errors (no second try on
// the other side), and a side with no target in the rotation passes its share to the others.
function compileProxySplit(cfg: ProxyConfig, split: SplitConfig, ctx: CompileContext): TerminalFn {
  const { pools, pick } = compileSplit(split, ctx)
  const timeouts = pools.map((p) => (cfg.timeoutMs === undefined ? p.timeouts : { ...p.timeouts, headersMs: cfg.timeoutMs, idleMs: cfg.timeoutMs }))
  if (cfg.websocket)
    return function proxySplitWithWebSocket(req) {
      const i = pick(req)
      return req.upgrade ? proxyWebSocket(req, pools[i]!, timeouts[i]!) : proxyTo(req, pools[i]!, timeouts[i]!)
    }
  return function proxySplit(req) {
    const i = pick(req)
    return proxyTo(req, pools[i]!, timeouts[i]!)
  }
}
