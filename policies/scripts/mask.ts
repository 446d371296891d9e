// A response script: mask personal data in a JSON answer before the partner gets it. Fields
// named below, at any depth, keep only a hint of their value: an address keeps its network
// part (203.0.113.7 → 203.0.x.x), an email its domain, anything else its last 4 characters.
// Answers that are not JSON stream through untouched: the body is read only for JSON.
import type { ResponseScript } from 'portcullis/script'

const MASKED = new Set(['x-real-ip', 'x-forwarded-for', 'email', 'phone', 'iban'])

function mask(value: string): string {
  const ip = /^(\d+\.\d+)\.\d+\.\d+$/.exec(value)
  if (ip) return `${ip[1]}.x.x`
  const at = value.indexOf('@')
  if (at > 0) return `***${value.slice(at)}`
  return value.length <= 4 ? '****' : `${'*'.repeat(value.length - 4)}${value.slice(-4)}`
}

function walk(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(walk)
  if (v === null || typeof v !== 'object') return v
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v)) out[k] = MASKED.has(k.toLowerCase()) && typeof x === 'string' ? mask(x) : walk(x)
  return out
}

export default (async (ctx) => {
  if (!ctx.response.headers.get('content-type')?.startsWith('application/json')) return
  ctx.response.setBody(walk(await ctx.response.json()) as object)
  ctx.response.headers.set('X-Masked', 'personal-data')
}) satisfies ResponseScript
