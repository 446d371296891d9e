import { parseUrl } from '../policy/cursor.ts'
import { didYouMean } from '../policy/diagnostics.ts'
import type { Span } from '../policy/source.ts'
import { proxyTo } from '../runtime/proxy.ts'
import { proxyWebSocket } from '../runtime/websocket.ts'
import { defineDirective } from './define.ts'

type ProxyConfig = { upstream: { name: string; span: Span } | { url: URL }; timeoutMs?: number; websocket?: boolean }

export default defineDirective({
  name: 'proxy',
  stage: 'proxy',
  terminal: true,
  places: ['route'],
  usage: 'proxy UPSTREAM | http://host:port[/base] [timeout DURATION] [websocket]',
  summary: 'Forwards the request to a named upstream or a URL, streaming both ways; 502 when unreachable, 504 when it does not answer in time.',
  read(a): ProxyConfig | undefined {
    const arg = a.expect(['word', 'url'], 'an upstream name or a URL')
    if (!arg) return undefined
    let upstream: ProxyConfig['upstream']
    if (arg.kind === 'url') {
      const url = parseUrl(arg.text)
      if (!url) return a.fail('bad-url', `'${arg.text}' is not a valid http(s) URL without query or credentials`, arg.span)
      upstream = { url }
    } else upstream = { name: arg.text, span: arg.span }
    const cfg: ProxyConfig = { upstream }
    if (a.accept('timeout')) {
      const ms = a.duration()
      if (ms === undefined) return undefined
      cfg.timeoutMs = ms
    }
    if (a.accept('websocket')) cfg.websocket = true
    a.end()
    return cfg
  },
  describe: (cfg) => `proxy ${'name' in cfg.upstream ? cfg.upstream.name : cfg.upstream.url.href}${cfg.websocket ? ' websocket' : ''}`,
  check(cfg, ctx) {
    if (!('name' in cfg.upstream) || ctx.upstreams.has(cfg.upstream.name)) return
    const { name, span } = cfg.upstream
    const near = didYouMean(name, ctx.upstreams)
    const hint = near
      ? `did you mean '${near}'?`
      : ctx.upstreams.size
        ? `upstreams: ${[...ctx.upstreams].join(', ')}`
        : 'declare it with: upstream NAME { target URL }'
    ctx.bag.error('unknown-upstream', `unknown upstream '${name}'`, span, { message: hint })
  },
  compile(cfg, ctx) {
    const pool = 'name' in cfg.upstream ? ctx.upstream(cfg.upstream.name) : ctx.inlineUpstream(cfg.upstream.url)
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
