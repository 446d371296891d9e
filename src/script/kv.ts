// A route's values for its scripts (ScriptKV): JSON under the route's own part of the store's
// key space, `script:<hash of the route id>:<key>`. The route id is stable across reloads and
// instances, so the values are too; nothing else in the store can be named from here.
import { createHash } from 'node:crypto'
import type { KeyValues } from '../store/kv.ts'
import type { ScriptKV } from './api.ts'

export const KV_MAX_KEY = 256
export const KV_MAX_VALUE = 64 * 1024

function checkKey(key: unknown): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > KV_MAX_KEY)
    throw new TypeError(`a kv key is a string of 1 to ${KV_MAX_KEY} characters`)
  return key
}

export function routeKeyValues(kv: KeyValues, routeId: string): ScriptKV {
  const ns = `script:${createHash('sha256').update(routeId).digest('hex').slice(0, 16)}:`
  return Object.freeze({
    async get<T>(key: string): Promise<T | null> {
      const text = await kv.get(ns + checkKey(key))
      if (text === null) return null
      try {
        return JSON.parse(text) as T
      } catch {
        return null
      }
    },
    async set(key: string, value: unknown, options?: { ttlMs?: number }): Promise<void> {
      const k = checkKey(key)
      const ttl = options?.ttlMs
      if (ttl !== undefined && !(typeof ttl === 'number' && ttl > 0 && Number.isFinite(ttl)))
        throw new TypeError('kv.set: ttlMs must be a positive number of milliseconds')
      const text = JSON.stringify(value)
      if (text === undefined) throw new TypeError(`kv.set: ${typeof value} is not a JSON value (delete the key instead)`)
      if (text.length > KV_MAX_VALUE) throw new RangeError(`kv.set: the value is ${text.length} characters of JSON, more than ${KV_MAX_VALUE}`)
      await kv.set(ns + k, text, ttl ?? null)
    },
    delete: (key: string) => kv.delete(ns + checkKey(key)),
  })
}
