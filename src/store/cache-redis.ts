// The answer cache in Redis: one key per entry, PREFIX + `cache:` + the caller's key, holding
// the encoded entry (binary-safe) with a PX expiry. A cache that is down is a miss, and a miss
// must not cost a wait on every request: after a failed call the cache answers "unavailable"
// at once for a short pause, then tries Redis again.
import type { Cluster, Redis } from 'ioredis'
import { decodeEntry, encodeEntry, type AnswerCache, type CacheEntry } from './cache.ts'
import { StoreUnavailable } from './store.ts'
import { event, warn } from '../log/events.ts'

const PAUSE_AFTER_FAILURE_MS = 1_000

export function redisAnswerCache(client: Redis | Cluster, prefix: string, call: <T>(f: () => Promise<T>) => Promise<T>): AnswerCache {
  const keyOf = (key: string) => `${prefix}cache:${key}`
  let pausedUntil = 0
  let down = false

  async function guarded<T>(f: () => Promise<T>): Promise<T> {
    if (performance.now() < pausedUntil) throw new StoreUnavailable('redis failed a moment ago')
    // Not connected: a miss now, not after waiting for a connection attempt.
    if (client.status !== 'ready') return failed(new StoreUnavailable(`redis is ${client.status}`))
    try {
      const v = await call(f)
      if (down) {
        down = false
        event('cache', 'cache response: redis answers again; caching resumed')
      }
      return v
    } catch (err) {
      return failed(err)
    }
  }

  function failed(err: unknown): never {
    pausedUntil = performance.now() + PAUSE_AFTER_FAILURE_MS
    if (!down) {
      down = true
      warn('cache', `cache response: ${(err as Error).message}; answering from the upstreams until redis is back`)
    }
    throw err instanceof StoreUnavailable ? err : new StoreUnavailable(String((err as Error)?.message ?? err))
  }

  return {
    get: (key) =>
      guarded(async (): Promise<CacheEntry | null> => {
        const bytes = await client.getBuffer(keyOf(key))
        return bytes === null ? null : decodeEntry(bytes)
      }),
    put: (key, entry) =>
      guarded(async () => {
        const ttl = Math.max(1, Math.ceil(entry.ttlMs))
        await client.set(keyOf(key), encodeEntry(entry), 'PX', ttl)
      }),
  }
}
