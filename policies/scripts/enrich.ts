// A rewrite script: enrich the upstream request from the calling app's record. Every `meta`
// entry becomes a header (partner_code → X-Partner-Code), the app's tier a query
// parameter, and the route's store counts the app's calls of the day (X-Partner-Calls-Today).
import type { RewriteScript } from 'portcullis/script'

const header = (key: string) =>
  `X-${key
    .split(/[^A-Za-z0-9]+/)
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('-')}`

export default (async (ctx) => {
  const app = ctx.app
  if (!app) return
  for (const [key, value] of Object.entries(app.meta)) ctx.upstream.setHeader(header(key), value)
  if (app.tier) ctx.upstream.setQuery('plan', app.tier)
  const day = new Date().toISOString().slice(0, 10)
  const key = `calls:${app.name}:${day}`
  const calls = ((await ctx.kv.get<number>(key)) ?? 0) + 1
  await ctx.kv.set(key, calls, { ttlMs: 2 * 24 * 3600 * 1000 })
  ctx.upstream.setHeader('X-Partner-Calls-Today', String(calls))
}) satisfies RewriteScript
