// Small values that `script` directives keep between requests (src/script/kv.ts gives each
// route its own part of the key space): strings under keys, each with an optional lifetime.
// The seam between the scripts and where the values live (kv-memory.ts, kv-redis.ts).
export interface KeyValues {
  // The value, or null when there is none or it expired. Rejects with StoreUnavailable when
  // the store does not answer.
  get(key: string): Promise<string | null>
  // Stores the value (replacing one under the key), for `ttlMs` when given; without one it
  // stays until deleted (Redis) or until the memory store needs the room.
  set(key: string, value: string, ttlMs: number | null): Promise<void>
  // True when there was such a key.
  delete(key: string): Promise<boolean>
}
