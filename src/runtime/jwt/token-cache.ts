// Tokens whose signature and claims were verified, so a token presented again skips the
// signature check. Keyed by the token text; an entry lives until the token expires (plus the
// route's leeway) or for MAX_AGE_MS, whichever is first (a key removed from a JWK set stops
// counting within that). The caller checks `nbf` again on every hit, against its clock.

export const MAX_AGE_MS = 60_000
export const MAX_ENTRIES = 10_000

export interface Verified {
  claims: Readonly<Record<string, unknown>>
  nbf: number // seconds since the epoch; -Infinity without `nbf`
  until: number // ms: from then on the entry is gone (the token expired, or it was kept long enough)
}

export class TokenCache {
  // A Map iterates in insertion order: the first key is the oldest entry.
  private readonly entries = new Map<string, Verified>()

  constructor(private readonly maxEntries = MAX_ENTRIES) {}

  get size(): number {
    return this.entries.size
  }

  get(token: string, nowMs: number): Verified | undefined {
    const v = this.entries.get(token)
    if (v === undefined) return undefined
    if (nowMs < v.until) return v
    this.entries.delete(token)
    return undefined
  }

  put(token: string, claims: Readonly<Record<string, unknown>>, nowMs: number, leewayMs = 0): Verified {
    const exp = typeof claims.exp === 'number' ? claims.exp * 1000 + leewayMs : Infinity
    const nbf = typeof claims.nbf === 'number' ? claims.nbf : -Infinity
    const v: Verified = { claims, nbf, until: Math.min(exp, nowMs + MAX_AGE_MS) }
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!)
    this.entries.set(token, v)
    return v
  }
}
