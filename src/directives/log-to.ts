// `log to SINK`: the route's access-log entry also goes to a declared sink (the stdout access
// log always runs). The request never waits for the sink: the entry is queued, spooled to disk
// while the sink is down, and delivered later (src/log/sinks/).
import { didYouMean } from '../policy/diagnostics.ts'
import type { Span } from '../policy/source.ts'
import { defineDirective } from './define.ts'

type LogToConfig = { sink: string; span: Span }

export default defineDirective({
  name: 'log to',
  stage: 'log',
  places: ['route', 'defaults'],
  usage: 'log to SINK',
  summary:
    'Also sends the access-log entry to a declared sink (Redis stream, Elasticsearch `_bulk` or NDJSON over HTTP, a file); never slows the request, loses nothing while the sink is down.',
  read(a): LogToConfig | undefined {
    const name = a.word('a sink name')
    a.end()
    return name && { sink: name.text, span: name.span }
  },
  describe: (cfg) => `log to ${cfg.sink}`,
  check(cfg, ctx) {
    if (ctx.sinks.has(cfg.sink)) return
    const near = didYouMean(cfg.sink, ctx.sinks)
    const hint = near
      ? `did you mean '${near}'?`
      : ctx.sinks.size
        ? `sinks: ${[...ctx.sinks].join(', ')}`
        : 'declare it with: sink NAME { redis stream "key" | http URL | file "path" }'
    ctx.bag.error('unknown-sink', `unknown sink '${cfg.sink}'`, cfg.span, { message: hint })
  },
  compile(cfg, ctx) {
    // `log to X` in defaults and again in the route: the entry goes to X once.
    const seen = ctx.routeState('log to', () => new Set<string>())
    if (seen.has(cfg.sink)) return null
    seen.add(cfg.sink)
    const sink = ctx.sink(cfg.sink)
    return function logTo(_req, entry) {
      sink.offer(entry)
    }
  },
})
