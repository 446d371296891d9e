// `proxy split`: which side of a weighted split a request goes to. With a sticky key the side
// is a pure function of the key (a stable hash → one of 10,000 buckets), so a caller stays on
// one side across requests and gateway instances with no shared state; without a key (or when
// the request has none) each request draws at random by weight.
import type { RequestContext } from './context.ts'
import { available, type UpstreamPool } from './upstream.ts'

// Shares are counted in hundredths of a percent: 12.5% = 1250 buckets.
export const BUCKETS = 10_000

export type StickyKey = (ctx: RequestContext) => string | undefined

// FNV-1a over the UTF-16 code units, then murmur3's finaliser so that keys differing in one
// character spread over every bucket. The same on every instance and every run.
export function bucketOf(key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return (h >>> 0) % BUCKETS
}

function hasTarget(pool: UpstreamPool, now: number): boolean {
  for (const t of pool.targets) if (available(t, now)) return true
  return false
}

// The side for each request: the bucket's, unless every target of that side is out of the
// rotation (active checks, passive ejection); then that side's buckets are spread over the
// sides that have one, in proportion to their shares (the same bucket → the same side, so a
// sticky caller still lands in one place, and the other sides' callers do not move). With no side available, the bucket's own (its pool then
// tries its targets anyway, and the request gets that upstream's answer or error).
export function splitPicker(sides: readonly { share: number; pool: UpstreamPool }[], sticky: StickyKey | null): (ctx: RequestContext) => number {
  const ends: number[] = []
  let sum = 0
  for (const s of sides) ends.push((sum += s.share))
  const sideOf = (bucket: number) => {
    let i = 0
    while (bucket >= ends[i]!) i++
    return i
  }
  return function pickSide(ctx) {
    const key = sticky === null ? undefined : sticky(ctx)
    const bucket = key === undefined ? Math.floor(Math.random() * BUCKETS) : bucketOf(key)
    const i = sideOf(bucket)
    const now = performance.now()
    if (hasTarget(sides[i]!.pool, now)) return i
    let open = 0
    for (const s of sides) if (hasTarget(s.pool, now)) open += s.share
    if (open === 0) return i
    // Where the bucket sits inside its side's range, spread over the open sides' shares.
    const start = ends[i]! - sides[i]!.share
    let at = Math.floor(((bucket - start) * open) / sides[i]!.share)
    for (let j = 0; j < sides.length; j++) {
      if (!hasTarget(sides[j]!.pool, now)) continue
      if (at < sides[j]!.share) return j
      at -= sides[j]!.share
    }
    return i
  }
}

// The value of a cookie in a Cookie header (`a=1; sid=xyz`), undefined when absent.
export function cookieValue(header: string | null, name: string): string | undefined {
  if (header === null) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq === -1) continue
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}
