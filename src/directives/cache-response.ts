// `cache response DURATION [per app]`: 200 answers to GET kept in the store (memory or Redis)
// for DURATION and given again without asking the upstream. The lookup runs after the access
// and rewrite stages, so a cached answer still passes every `require`, `allow` and `throttle`.
// An answer is only ever given to a request with the same route, host, scheme, upstream path
// and query (after rewrites), app, user, forwarded Authorization and Cookie, and the request
// headers the upstream's Vary names. docs/caching.md says what is stored and why not.
import { withBody } from '../runtime/answer-body.ts'
import { joined, readUpTo } from '../runtime/body.ts'
import type { BodyStep, RequestContext } from '../runtime/context.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import type { AnswerCache, CachedAnswer } from '../store/cache.ts'
import { joinSpans, type Span } from '../policy/source.ts'
import { defineDirective } from './define.ts'

interface CacheConfig {
  ttlMs: number
  ttlText: string
  perApp: Span | null
}

// The largest answer kept; a larger one streams to the client as it comes, unstored.
export const MAX_CACHED_ANSWER = 1024 * 1024
const MAX_VARY_NAMES = 16
// The cache's name in Cache-Status (RFC 9211).
const CACHE = 'portcullis'
// Made again for each answer (framing), or belonging to one request.
const NOT_STORED = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'x-request-id'])
// The upstream's Cache-Control directives that keep an answer out of a shared cache.
const REFUSING = new Set(['no-store', 'no-cache', 'private'])

const sha256 = (s: string) => new Bun.CryptoHasher('sha256').update(s).digest('hex')

// What the lookup learnt, for the answer's step: where a miss is stored.
interface Lookup {
  base: string
  headers: Headers // as the upstream gets them (Vary names these)
  variant: boolean // the URL varies; this variant was missing
  down: boolean // the store did not answer: nothing is stored either
}

function baseKey(ctx: RequestContext, routeId: string, headers: Headers): string {
  const query = ctx.upstreamQuery === null ? ctx.rawQuery : ctx.upstreamQuery
  const who = [ctx.identity?.app?.name ?? null, ctx.identity?.user?.id ?? null, headers.get('authorization'), headers.get('cookie')]
  return sha256(JSON.stringify([routeId, ctx.proto, ctx.host, ctx.upstreamPath, query, ...who]))
}

const variantKey = (base: string, names: readonly string[], headers: Headers) => `${base}:${sha256(JSON.stringify(names.map((n) => headers.get(n))))}`

function cacheStatus(headers: Headers, entry: string): string {
  const upstream = headers.get('cache-status')
  return upstream ? `${upstream}, ${entry}` : entry
}

// The stored answer as the client gets it: Age counts from when it was stored (plus the Age
// it came with), `ttl` says how long it stays fresh.
function answerOf(ctx: RequestContext, e: CachedAnswer, now: number): Response {
  const headers = new Headers(e.headers)
  const age = Math.max(0, Math.floor((now - e.storedAt) / 1000)) + (Number.parseInt(headers.get('age') ?? '', 10) || 0)
  const ttl = Math.max(0, Math.ceil((e.storedAt + e.ttlMs - now) / 1000))
  headers.set('age', String(age))
  headers.set('cache-status', cacheStatus(headers, `${CACHE}; hit; ttl=${ttl}`))
  headers.set('content-length', String(e.body.byteLength))
  return new Response(ctx.method === 'HEAD' ? null : e.body, { status: e.status, headers })
}

// How long the answer may be kept, or why it may not be: the route's duration, shortened by
// the upstream's s-maxage (else max-age) less the Age it came with.
function storable(res: Response, ttlMs: number): { ttlMs: number; vary: string[] } | string {
  if (res.status !== 200) return 'status'
  const h = res.headers
  if (h.has('set-cookie')) return 'set-cookie'
  let maxAge: number | null = null
  let sMaxAge: number | null = null
  for (const part of (h.get('cache-control') ?? '').toLowerCase().split(',')) {
    const [name = '', value] = part.trim().split('=', 2)
    if (REFUSING.has(name)) return 'cache-control'
    const n = Number.parseInt((value ?? '').replace(/"/g, ''), 10)
    if (name === 'max-age' && n >= 0) maxAge = n
    else if (name === 's-maxage' && n >= 0) sMaxAge = n
  }
  const freshFor = sMaxAge ?? maxAge
  if (freshFor !== null) ttlMs = Math.min(ttlMs, (freshFor - (Number.parseInt(h.get('age') ?? '', 10) || 0)) * 1000)
  if (ttlMs <= 0) return 'cache-control'
  const vary = [
    ...new Set(
      (h.get('vary') ?? '')
        .toLowerCase()
        .split(',')
        .map((n) => n.trim())
        .filter(Boolean),
    ),
  ].sort()
  if (vary.includes('*') || vary.length > MAX_VARY_NAMES) return 'vary'
  const length = h.get('content-length')
  if (length !== null && Number(length) > MAX_CACHED_ANSWER) return 'too-large'
  return { ttlMs, vary }
}

// The part of the body read so far, then the rest as it comes.
function rest(
  parts: Uint8Array[],
  reader: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(reason?: unknown): Promise<void> },
): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(c) {
      for (const p of parts) c.enqueue(p)
    },
    async pull(c) {
      const { done, value } = await reader.read()
      if (done) c.close()
      else c.enqueue(value)
    },
    cancel: (reason) => reader.cancel(reason),
  })
}

// `now`: the build's clock (the kit's in tests), which the memory cache's expiry runs on too.
function cacheStep(cache: AnswerCache, routeId: string, routeTtlMs: number, now: () => number): BodyStep {
  const lookups = new WeakMap<RequestContext, Lookup>()
  const served = new WeakSet<RequestContext>()

  async function store(look: Lookup, answer: CachedAnswer, vary: string[]): Promise<boolean> {
    try {
      if (vary.length === 0) await cache.put(look.base, answer)
      else {
        await cache.put(look.base, { kind: 'vary', names: vary, storedAt: answer.storedAt, ttlMs: answer.ttlMs })
        await cache.put(variantKey(look.base, vary, look.headers), answer)
      }
      return true
    } catch {
      return false // the store said so (cache-redis.ts); the answer goes out unstored
    }
  }

  return {
    async before(ctx) {
      if ((ctx.method !== 'GET' && ctx.method !== 'HEAD') || ctx.upgrade !== null) return null
      const headers = ctx.upstreamHeaders
      const look: Lookup = { base: baseKey(ctx, routeId, headers), headers, variant: false, down: false }
      lookups.set(ctx, look)
      let entry
      try {
        entry = await cache.get(look.base)
        if (entry?.kind === 'vary') {
          look.variant = true
          entry = await cache.get(variantKey(look.base, entry.names, headers))
        }
      } catch {
        look.down = true
        ctx.cacheLookup = 'error'
        return null
      }
      if (entry?.kind !== 'answer') {
        ctx.cacheLookup = 'miss'
        return null
      }
      ctx.cacheLookup = 'hit'
      served.add(ctx)
      return answerOf(ctx, entry, now())
    },

    async run(ctx, res) {
      if (served.has(ctx)) return res
      const look = lookups.get(ctx)
      if (look === undefined) {
        if (ctx.method !== 'GET' && ctx.method !== 'HEAD') res.headers.set('cache-status', cacheStatus(res.headers, `${CACHE}; fwd=method`))
        return res
      }
      const miss = `${CACHE}; fwd=${look.variant ? 'vary-miss' : 'uri-miss'}`
      const verdict = ctx.method === 'HEAD' ? 'head' : storable(res, routeTtlMs)
      if (typeof verdict === 'string' || look.down) {
        res.headers.set('cache-status', cacheStatus(res.headers, typeof verdict === 'string' ? `${miss}; detail=${verdict}` : miss))
        return res
      }
      let read
      const reader = res.body?.getReader()
      try {
        read = reader ? await readUpTo(reader, MAX_CACHED_ANSWER) : { parts: [], total: 0, ended: true }
      } catch {
        throw new GatewayError('bad_gateway', 'the upstream answer was cut before its end')
      }
      if (!read.ended) {
        const headers = new Headers(res.headers)
        headers.set('cache-status', cacheStatus(headers, `${miss}; detail=too-large`))
        return new Response(rest(read.parts, reader!), { status: res.status, statusText: res.statusText, headers })
      }
      const body = joined(read.parts)
      const own = new Set((ctx.responseHeaders ?? []).map(([n]) => n.toLowerCase()))
      const kept: [string, string][] = []
      for (const [name, value] of res.headers) if (!NOT_STORED.has(name) && !own.has(name)) kept.push([name, value])
      const answer: CachedAnswer = { kind: 'answer', status: res.status, headers: kept, body, storedAt: now(), ttlMs: verdict.ttlMs }
      const stored = await store(look, answer, verdict.vary)
      return withBody(ctx, res, body, { 'cache-status': cacheStatus(res.headers, stored ? `${miss}; stored` : miss) })
    },
  }
}

export default defineDirective<CacheConfig, 'response'>({
  name: 'cache response',
  stage: 'response',
  places: ['route'],
  usage: 'cache response DURATION [per app]',
  summary:
    'Keeps 200 answers to GET (up to 1mb) in the store for DURATION and answers later requests from it, after the access checks; keyed by route, upstream path and query, app, user, credentials and Vary; Age and Cache-Status headers.',
  describe: (cfg) => `cache response ${cfg.ttlText}${cfg.perApp ? ' per app' : ''}`,
  read(a) {
    const d = a.peek()
    const ttlMs = a.duration('a duration like 30s')
    if (ttlMs === undefined) return undefined
    let perApp: Span | null = null
    if (!a.done()) {
      const per = a.peek()!
      if (!a.oneOf(['per'] as const, "'per app'")) return undefined
      const w = a.word("'app' (answers are kept per app)")
      if (!w) return undefined
      if (w.text !== 'app') return a.fail('bad-key', `'cache response' is kept per app only, found 'per ${w.text}'`, w.span)
      perApp = joinSpans(per.span, w.span)
    }
    a.end()
    return { ttlMs, ttlText: d!.text, perApp }
  },
  check(cfg, ctx, at) {
    const methods = ctx.route.label.split(' ')[0]!
    if (methods !== '*' && !methods.split(',').includes('GET'))
      ctx.bag.error('cache-needs-get', `'cache response' keeps answers to GET; the route ${ctx.route.label} takes no GET`, at)
    const binds = ctx.route.binds.has('app')
    if (cfg.perApp && !binds)
      ctx.bag.error(
        'unbound-app',
        `'cache response … per app' needs a route that identifies the caller's app; the route ${ctx.route.label} identifies none`,
        cfg.perApp,
        {
          message: 'add a require line before it (require hmac, require jwt, require mtls or require key), or drop per app',
        },
      )
    if (!cfg.perApp && binds)
      ctx.bag.error('cache-per-app', `the route ${ctx.route.label} identifies apps: write 'cache response … per app'`, at, {
        message: "answers are kept per app on such a route (one app never gets another app's cached answer); the policy should say so",
      })
  },
  compile(cfg, ctx) {
    return cacheStep(ctx.store.cache, ctx.route.id, cfg.ttlMs, ctx.now)
  },
})
