// `require key [header NAME | query NAME]`: the app whose `api-key` is the presented value.
// Looked up by the key's SHA-256 (store apps keep nothing else), then compared in constant
// time; a key outside its rotation window is refused. The header or query parameter carrying
// the key never reaches the upstream.
import { timingSafeEqual } from 'node:crypto'
import { identify, unauthenticated } from '../runtime/auth.ts'
import { sha256, validAt } from '../runtime/identity.ts'
import { removeParam } from '../runtime/query.ts'
import { defineRequire } from './require-common.ts'

type From = { header: string } | { query: string }

export default defineRequire<From>({
  name: 'key',
  options: '[header NAME | query NAME]',
  summary: "Identifies the app by its API key (default header X-Api-Key; store apps keep only the key's SHA-256).",
  binds: ['app'],
  challenge: 'ApiKey',
  setsHeaders: (from) => ('header' in from ? [from.header] : []),
  read(a) {
    const where = a.accept('header') ? 'header' : a.accept('query') ? 'query' : null
    if (where === null) return { header: 'x-api-key' }
    const n = a.word(`a ${where} name`)
    if (!n) return undefined
    return where === 'header' ? { header: n.text.toLowerCase() } : { query: n.text }
  },
  compile(from, c) {
    const apps = c.apps
    const now = c.now
    return function apiKey(ctx) {
      let presented: string | null
      // The key is the caller's secret: the upstream never sees it (the header is dropped as a
      // name this directive owns; the query parameter is removed here).
      if ('header' in from) presented = ctx.req.headers.get(from.header)
      else {
        presented = ctx.rawQuery === '' ? null : new URLSearchParams(ctx.rawQuery).get(from.query)
        if (presented !== null) ctx.upstreamQuery = removeParam(ctx.upstreamQuery ?? ctx.rawQuery, from.query)
      }
      if (presented === null) return null
      if (presented === '') return unauthenticated('the API key is empty')
      const digest = sha256(presented)
      const found = apps.byApiKey(Buffer.from(digest).toString('hex'))
      if (found === null || found === 'unavailable') return identify(ctx, found, 'key', 'API key')
      const t = now()
      const ok = found.apiKeys.some((k) => timingSafeEqual(k.value, digest) && validAt(k, t))
      return ok ? identify(ctx, found, 'key', 'API key') : unauthenticated('the API key is not valid')
    }
  },
})
