// Redis through ioredis: short command timeouts, reconnecting by itself, never
// queueing commands while disconnected (a down store is an answer, not a hang).
// Keys: PREFIX + `nonce:…` (expiring), PREFIX + `apps` (a hash: name → JSON record);
// app changes are published on PREFIX + `apps:changed` to every instance.
import Redis from 'ioredis'
import { StoredApp } from './app-record.ts'
import { StoreUnavailable, type AppChange, type AppRecords, type Store } from './store.ts'

export const STORE_TIMEOUT_MS = 500
const CONNECT_TIMEOUT_MS = 1000

export interface RedisStoreOptions {
  prefix?: string // default `portcullis:`; tests use one per run
}

function connection(url: string): Redis {
  return new Redis(url, {
    lazyConnect: false,
    enableOfflineQueue: false,
    commandTimeout: STORE_TIMEOUT_MS,
    connectTimeout: CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  })
}

// A record another writer stored can be anything: one that does not validate is skipped
// (and said once), never served half-read.
function parseApp(name: string, json: string | null): StoredApp | null {
  if (json === null) return null
  try {
    const r = StoredApp.safeParse(JSON.parse(json))
    if (r.success && r.data.name === name) return r.data
  } catch {}
  console.error(`portcullis: redis: the stored app '${name}' is not a valid record; ignored`)
  return null
}

export function redisStore(url: string, opts: RedisStoreOptions = {}): Store {
  const prefix = opts.prefix ?? 'portcullis:'
  const client = connection(url)
  const sub = connection(url)
  const appsKey = `${prefix}apps`
  const channel = `${prefix}apps:changed`
  const listeners = new Set<(c: AppChange) => void>()
  let subscribed = false
  let lastError = ''
  const onError = (err: Error) => {
    if (err.message !== lastError) console.error(`portcullis: redis: ${err.message}`)
    lastError = err.message
  }
  client.on('error', onError)
  sub.on('error', onError)
  client.on('ready', () => (lastError = ''))
  // Every (re)connection of the subscriber may have missed changes: listeners reload all.
  sub.on('ready', () => {
    sub.subscribe(channel).then(
      () => {
        subscribed = true
        for (const l of listeners) l({ all: true })
      },
      () => {},
    )
  })
  sub.on('close', () => (subscribed = false))
  sub.on('message', (ch: string, name: string) => {
    if (ch === channel) for (const l of listeners) l({ name })
  })

  // Resolves when the connection attempt under way succeeds or fails, or after its timeout.
  const connectOutcome = () =>
    new Promise<void>((resolve) => {
      const events = ['ready', 'error', 'close'] as const
      const done = () => {
        clearTimeout(timer)
        for (const e of events) client.off(e, done)
        resolve()
      }
      const timer = setTimeout(done, CONNECT_TIMEOUT_MS)
      for (const e of events) client.once(e, done)
    })

  async function call<T>(f: () => Promise<T>): Promise<T> {
    if (client.status === 'connecting' || client.status === 'connect') await connectOutcome()
    if (client.status !== 'ready') throw new StoreUnavailable(`redis is ${client.status}`)
    try {
      return await f()
    } catch (err) {
      throw new StoreUnavailable(`redis: ${(err as Error).message}`)
    }
  }

  const apps: AppRecords = {
    get: (name) => call(async () => parseApp(name, await client.hget(appsKey, name))),
    list: () =>
      call(async () => {
        const all = await client.hgetall(appsKey)
        return Object.entries(all).flatMap(([name, json]) => parseApp(name, json) ?? [])
      }),
    put: (app) =>
      call(async () => {
        const [first, second] = (await client.multi().hset(appsKey, app.name, JSON.stringify(app)).publish(channel, app.name).exec()) ?? []
        if (!first || !second || first[0] || second[0]) throw first?.[0] ?? second?.[0] ?? new Error('transaction aborted')
        return first[1] === 1
      }),
    delete: (name) =>
      call(async () => {
        const [first, second] = (await client.multi().hdel(appsKey, name).publish(channel, name).exec()) ?? []
        if (!first || !second || first[0] || second[0]) throw first?.[0] ?? second?.[0] ?? new Error('transaction aborted')
        return first[1] === 1
      }),
    watch(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }

  return {
    kind: 'redis',
    get live() {
      return subscribed && sub.status === 'ready' && client.status === 'ready'
    },
    async ping() {
      await call(() => client.ping())
    },
    claimOnce: (key, ttlMs) => call(async () => (await client.set(`${prefix}nonce:${key}`, '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')) === 'OK'),
    apps,
    async close() {
      listeners.clear()
      client.disconnect()
      sub.disconnect()
    },
  }
}
