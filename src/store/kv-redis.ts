// Key/values in Redis: one string key per value, PREFIX + `kv:` + the caller's key, with a PX
// expiry when the value has a lifetime. Every call goes through the store's deadline.
import type { Cluster, Redis } from 'ioredis'
import type { KeyValues } from './kv.ts'

export function redisKeyValues(client: Redis | Cluster, prefix: string, call: <T>(f: () => Promise<T>) => Promise<T>): KeyValues {
  const keyOf = (key: string) => `${prefix}kv:${key}`
  return {
    get: (key) => call(() => client.get(keyOf(key))),
    set: (key, value, ttlMs) =>
      call(async () => {
        if (ttlMs === null) await client.set(keyOf(key), value)
        else if (ttlMs > 0) await client.set(keyOf(key), value, 'PX', Math.max(1, Math.ceil(ttlMs)))
        else await client.del(keyOf(key))
      }),
    delete: (key) => call(async () => (await client.del(keyOf(key))) === 1),
  }
}
