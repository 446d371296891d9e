// Stored answers for `cache response`: the seam between the directive and where entries live
// (cache-memory.ts, cache-redis.ts). A key holds an answer, or (for an answer the upstream said
// varies) the names of the request headers that pick the variant, each stored under a key of
// its own. Entries expire `ttlMs` after `storedAt`.

export interface CachedAnswer {
  kind: 'answer'
  status: number
  headers: [string, string][]
  body: Uint8Array
  storedAt: number // ms since the epoch, the storing instance's clock
  ttlMs: number
}

export interface VaryEntry {
  kind: 'vary'
  names: string[] // lower case, sorted
  storedAt: number
  ttlMs: number
}

export type CacheEntry = CachedAnswer | VaryEntry

export interface AnswerCache {
  // The entry, or null when there is none or it expired. Rejects with StoreUnavailable when
  // the store does not answer (callers treat that as a miss).
  get(key: string): Promise<CacheEntry | null>
  // Stores the entry for its ttlMs (replacing one under the key). A store may drop it (too
  // large for its bounds); it rejects with StoreUnavailable when the store does not answer.
  put(key: string, entry: CacheEntry): Promise<void>
}

// Bytes an entry holds, for the memory cache's budget.
export function entrySize(key: string, e: CacheEntry): number {
  let n = 64 + key.length
  if (e.kind === 'vary') for (const name of e.names) n += name.length
  else {
    n += e.body.byteLength
    for (const [name, value] of e.headers) n += name.length + value.length
  }
  return n
}

// An entry as bytes (the Redis value): its fields as one line of JSON, then the body's bytes.
export function encodeEntry(e: CacheEntry): Buffer {
  const meta =
    e.kind === 'vary'
      ? { v: 1, kind: 'vary', names: e.names, storedAt: e.storedAt, ttlMs: e.ttlMs }
      : { v: 1, kind: 'answer', status: e.status, headers: e.headers, storedAt: e.storedAt, ttlMs: e.ttlMs }
  const head = Buffer.from(`${JSON.stringify(meta)}\n`)
  return e.kind === 'vary' ? head : Buffer.concat([head, e.body])
}

const isPair = (h: unknown): h is [string, string] => Array.isArray(h) && h.length === 2 && typeof h[0] === 'string' && typeof h[1] === 'string'

// The entry those bytes hold, or null for bytes that are not one (another writer's, an older format).
export function decodeEntry(bytes: Buffer): CacheEntry | null {
  const nl = bytes.indexOf(0x0a)
  if (nl === -1) return null
  let m: Record<string, unknown>
  try {
    m = JSON.parse(bytes.subarray(0, nl).toString('utf8'))
  } catch {
    return null
  }
  if (m === null || typeof m !== 'object' || m.v !== 1 || typeof m.storedAt !== 'number' || typeof m.ttlMs !== 'number') return null
  if (m.kind === 'vary') {
    if (!Array.isArray(m.names) || !m.names.every((n) => typeof n === 'string')) return null
    return { kind: 'vary', names: m.names, storedAt: m.storedAt, ttlMs: m.ttlMs }
  }
  if (m.kind !== 'answer' || typeof m.status !== 'number' || !Array.isArray(m.headers) || !m.headers.every(isPair)) return null
  const body = new Uint8Array(bytes.buffer, bytes.byteOffset + nl + 1, bytes.byteLength - nl - 1)
  return { kind: 'answer', status: m.status, headers: m.headers, body, storedAt: m.storedAt, ttlMs: m.ttlMs }
}
